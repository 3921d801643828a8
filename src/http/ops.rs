//! See http/mod.rs.

use axum::Router;

use super::AppState;

pub fn open_router() -> Router<AppState> {
    Router::new()
}

pub fn protected_router() -> Router<AppState> {
    Router::new()
}
