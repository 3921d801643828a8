//! A failed call to the identity service, and its class (identity reference, section 3):
//! sign-in required, misconfigured (naming the key), transient, or something else.
//! `error` and `suberror` decide; `error_codes` only where the reference says a code
//! overrides them.

use std::time::Duration;

use serde::Deserialize;

use crate::auth::{AuthError, SignInRequired};

/// The OAuth error body Entra sends (often with HTTP 400, sometimes with 200).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<i64>,
    #[serde(default)]
    pub suberror: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl OAuthError {
    /// For operators: the error, its AADSTS codes and the first line of the description
    /// (the rest is trace ids and a timestamp, which are logged separately).
    fn summary(&self) -> String {
        let mut s = self.error.clone();
        if let Some(sub) = &self.suberror {
            s.push_str(&format!("/{sub}"));
        }
        if let Some(first) = self
            .error_description
            .as_deref()
            .and_then(|d| d.lines().next())
            .filter(|l| !l.is_empty())
        {
            s.push_str(&format!(": {}", first.trim()));
        } else if !self.error_codes.is_empty() {
            let codes: Vec<String> = self
                .error_codes
                .iter()
                .map(|c| format!("AADSTS{c}"))
                .collect();
            s.push_str(&format!(" ({})", codes.join(", ")));
        }
        s
    }
}

/// What went wrong talking to the authority, before classification.
#[derive(Debug)]
pub(crate) enum IdentityFailure {
    /// An OAuth error body, whatever the status.
    OAuth {
        status: u16,
        body: Box<OAuthError>,
        retry_after: Option<Duration>,
    },
    /// An HTTP error without an OAuth body (a proxy, a load balancer).
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// A 3xx, never followed: it would carry the refresh token and the client secret to
    /// wherever `location` points.
    Redirect {
        status: u16,
        location: String,
    },
    Network {
        message: String,
    },
    /// A success status with a body we cannot use.
    Malformed {
        message: String,
    },
}

/// How a failure is handled (identity reference, section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    SignIn,
    Misconfigured(&'static str),
    Transient,
    /// A protocol error that is none of the above: reported, not retried.
    Other,
}

impl IdentityFailure {
    pub(crate) fn class(&self) -> Class {
        match self {
            IdentityFailure::OAuth { status, body, .. } => classify(*status, body),
            IdentityFailure::Http { status, .. } if *status == 429 || *status >= 500 => {
                Class::Transient
            }
            IdentityFailure::Http { status: 408, .. } => Class::Transient,
            IdentityFailure::Http { .. }
            | IdentityFailure::Redirect { .. }
            | IdentityFailure::Malformed { .. } => Class::Other,
            IdentityFailure::Network { .. } => Class::Transient,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            IdentityFailure::OAuth { retry_after, .. }
            | IdentityFailure::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn oauth_error(&self) -> Option<&str> {
        match self {
            IdentityFailure::OAuth { body, .. } => Some(&body.error),
            _ => None,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            IdentityFailure::OAuth { status, body, .. } => {
                format!("{} (HTTP {status})", body.summary())
            }
            IdentityFailure::Http { status, .. } => {
                format!("HTTP {status} without an OAuth error body")
            }
            IdentityFailure::Redirect { status, location } => format!(
                "HTTP {status} redirect to {location}, not followed: sign-in requests go only to \
                 `authority_url`; point it at the identity service itself"
            ),
            IdentityFailure::Network { message } => message.clone(),
            IdentityFailure::Malformed { message } => message.clone(),
        }
    }

    /// The typed error an operator sees.
    pub(crate) fn into_error(self) -> AuthError {
        let message = self.describe();
        match self.class() {
            Class::SignIn => SignInRequired::new(format!(
                "the identity service refused the saved login: {message}"
            ))
            .into(),
            Class::Misconfigured(key) => AuthError::Configuration {
                key,
                message: format!("the identity service says {message}"),
            },
            Class::Transient => AuthError::Transient { message },
            Class::Other => AuthError::Protocol { message },
        }
    }

    pub(super) fn log(&self, request_id: &str, what: &'static str) {
        match self {
            // RFC 8628: the normal answer while the operator has not finished signing in;
            // `login` polls through it, so it is no failure anyone should see.
            IdentityFailure::OAuth { body, .. } if body.error == "authorization_pending" => {
                tracing::debug!(
                    event = "device_code_pending",
                    request = what,
                    client_request_id = request_id,
                    "Still waiting for the sign-in to be completed in the browser."
                )
            }
            IdentityFailure::OAuth { status, body, .. } => tracing::info!(
                event = "identity_request_failed",
                request = what,
                status = *status,
                error = %body.error,
                suberror = body.suberror.as_deref().unwrap_or(""),
                error_codes = %codes(&body.error_codes),
                trace_id = body.trace_id.as_deref().unwrap_or(""),
                correlation_id = body.correlation_id.as_deref().unwrap_or(""),
                client_request_id = request_id,
                "The identity service answered {what} with {}.",
                body.error
            ),
            other => tracing::info!(
                event = "identity_request_failed",
                request = what,
                client_request_id = request_id,
                error = %other.describe(),
                "The identity service request ({what}) failed: {}.",
                other.describe()
            ),
        }
    }
}

/// Branches on `error` + `suberror`; `error_codes` only where the reference lists codes
/// that change the class whatever `error` says.
fn classify(status: u16, body: &OAuthError) -> Class {
    let has = |codes: &[i64]| body.error_codes.iter().any(|c| codes.contains(c));
    if has(&[53003]) {
        return Class::Misconfigured("tenant_id");
    }
    if has(&[50033, 90006, 90024, 90033, 90090, 50196]) {
        return Class::Transient;
    }
    match body.error.as_str() {
        "invalid_grant" | "interaction_required" => Class::SignIn,
        "consent_required" => match body.suberror.as_deref() {
            Some("client_mismatch" | "protection_policy_required") => {
                Class::Misconfigured("client_id")
            }
            _ => Class::SignIn,
        },
        "invalid_client" => {
            if has(&[7000215, 7000222, 700025]) {
                Class::Misconfigured("client_secret")
            } else {
                Class::Misconfigured("client_id")
            }
        }
        "unauthorized_client" | "invalid_request" => {
            if has(&[90002, 50194]) {
                Class::Misconfigured("tenant_id")
            } else {
                Class::Misconfigured("client_id")
            }
        }
        "invalid_scope" => Class::Misconfigured("scope"),
        "temporarily_unavailable" | "server_error" => Class::Transient,
        _ if status == 429 || status >= 500 => Class::Transient,
        _ => Class::Other,
    }
}

/// `error_codes` as a plain list for logs ("50173,70008"), not Rust's `[50173, 70008]`.
fn codes(codes: &[i64]) -> String {
    codes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(error: &str, codes: &[i64], suberror: Option<&str>) -> OAuthError {
        OAuthError {
            error: error.into(),
            error_codes: codes.to_vec(),
            suberror: suberror.map(Into::into),
            ..OAuthError::default()
        }
    }

    #[test]
    fn errors_are_classified_as_the_reference_says() {
        assert_eq!(
            classify(400, &err("invalid_grant", &[70008], None)),
            Class::SignIn
        );
        assert_eq!(
            classify(400, &err("invalid_grant", &[700082], None)),
            Class::SignIn
        );
        assert_eq!(
            classify(400, &err("interaction_required", &[50076], None)),
            Class::SignIn
        );
        assert_eq!(
            classify(400, &err("consent_required", &[65001], None)),
            Class::SignIn
        );
        assert_eq!(
            classify(400, &err("consent_required", &[], Some("client_mismatch"))),
            Class::Misconfigured("client_id")
        );
        assert_eq!(
            classify(401, &err("invalid_client", &[7000218], None)),
            Class::Misconfigured("client_id")
        );
        assert_eq!(
            classify(401, &err("invalid_client", &[7000222], None)),
            Class::Misconfigured("client_secret")
        );
        assert_eq!(
            classify(400, &err("unauthorized_client", &[700016], None)),
            Class::Misconfigured("client_id")
        );
        assert_eq!(
            classify(400, &err("invalid_request", &[90002], None)),
            Class::Misconfigured("tenant_id")
        );
        assert_eq!(
            classify(400, &err("invalid_scope", &[70011], None)),
            Class::Misconfigured("scope")
        );
        assert_eq!(
            classify(400, &err("invalid_grant", &[53003], None)),
            Class::Misconfigured("tenant_id")
        );
        assert_eq!(
            classify(400, &err("temporarily_unavailable", &[], None)),
            Class::Transient
        );
        assert_eq!(
            classify(400, &err("invalid_request", &[90033], None)),
            Class::Transient
        );
        assert_eq!(classify(503, &err("whatever", &[], None)), Class::Transient);
        assert_eq!(classify(400, &err("whatever", &[], None)), Class::Other);
        assert_eq!(
            IdentityFailure::Http {
                status: 429,
                retry_after: None
            }
            .class(),
            Class::Transient
        );
        assert_eq!(
            IdentityFailure::Network {
                message: "refused".into()
            }
            .class(),
            Class::Transient
        );
    }

    #[test]
    fn sign_in_errors_display_the_login_hint() {
        let f = IdentityFailure::OAuth {
            status: 400,
            body: Box::new(err("invalid_grant", &[70008], None)),
            retry_after: None,
        };
        let e = f.into_error();
        assert!(
            e.to_string()
                .starts_with("Sign-in required: run `partner-center-sync login`"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 77);
    }
}
