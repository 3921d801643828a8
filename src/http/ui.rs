//! The single-page web UI at `/`, embedded in the binary so a server without internet
//! access (no CDN) and without a separate web server can show it.
//!
//! The assets are plain HTML, CSS and JavaScript modules served as they are written (no
//! build step): `app.js` is the entry module and imports the others from `js/`. The page
//! is open (it holds no data); the data it loads goes through the API and its bearer
//! token. A strict Content-Security-Policy backs up the scripts' rule of never turning
//! data into markup: even an escaping mistake could not run injected script.

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// A module under `ui/js/`, served at `/assets/js/`.
macro_rules! module {
    ($name:literal) => {
        (
            concat!("/assets/js/", $name, ".js"),
            JS,
            include_str!(concat!("ui/js/", $name, ".js")),
        )
    };
}

/// Every file the page loads: (URL path, content type, body). A module added under
/// `ui/js/` needs one row here; a unit test checks that every import has one.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("ui/index.html")),
    ("/assets/app.css", CSS, include_str!("ui/app.css")),
    ("/assets/favicon.svg", SVG, include_str!("ui/favicon.svg")),
    ("/assets/app.js", JS, include_str!("ui/app.js")),
    module!("api"),
    module!("badges"),
    module!("chart"),
    module!("columns"),
    module!("companies"),
    module!("detail"),
    module!("dom"),
    module!("download"),
    module!("filters"),
    module!("format"),
    module!("history"),
    module!("notifications"),
    module!("pipeline"),
    module!("referrals"),
    module!("runs"),
    module!("shortcuts"),
    module!("state"),
    module!("status"),
    module!("storage"),
    module!("tabs"),
    module!("toast"),
    module!("views"),
    module!("visits"),
];

pub(crate) fn router() -> Router<AppState> {
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(path, get(move || asset(content_type, body)))
        })
}

/// `no-cache` (revalidate every time) so an upgraded daemon never serves a page that
/// mixes old and new assets; they are small.
async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL path each `import … from './x.js'` of the module at `path` resolves to.
    fn imports(path: &str, body: &str) -> Vec<String> {
        let dir = &path[..=path.rfind('/').expect("an absolute path")];
        body.lines()
            .filter_map(|line| line.trim().strip_prefix("import "))
            .filter_map(|rest| rest.split(" from '").nth(1))
            .filter_map(|spec| spec.strip_suffix("';"))
            .map(|spec| format!("{dir}{}", spec.trim_start_matches("./")))
            .collect()
    }

    #[test]
    fn every_module_import_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|(path, _, _)| *path).collect();
        let mut seen = 0;
        for (path, _, body) in ASSETS.iter().filter(|(_, kind, _)| *kind == JS) {
            for import in imports(path, body) {
                seen += 1;
                assert!(
                    served.contains(&import.as_str()),
                    "{path} imports {import}, which ui.rs does not serve"
                );
            }
        }
        assert!(seen > 10, "the import scan found only {seen} imports");
    }

    #[test]
    fn every_module_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/ui/js");
        for entry in std::fs::read_dir(&dir).expect("src/http/ui/js") {
            let name = entry.expect("a directory entry").file_name();
            let path = format!("/assets/js/{}", name.to_string_lossy());
            assert!(
                ASSETS.iter().any(|(p, _, _)| *p == path),
                "{path} has no row in ASSETS"
            );
        }
    }

    #[test]
    fn every_served_module_is_imported() {
        let imported: Vec<String> = ASSETS
            .iter()
            .filter(|(_, kind, _)| *kind == JS)
            .flat_map(|(path, _, body)| imports(path, body))
            .collect();
        for (path, _, _) in ASSETS
            .iter()
            .filter(|(p, kind, _)| *kind == JS && *p != "/assets/app.js")
        {
            assert!(
                imported.iter().any(|i| i == path),
                "{path} is served but no module imports it"
            );
        }
    }
}
