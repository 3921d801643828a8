//! How a Partner Center request or paging pass ends when it does not succeed, each case
//! saying what the operator can do about it.

use crate::auth::{AuthError, SignInRequired};

#[derive(Debug, thiserror::Error)]
pub enum PcError {
    #[error(transparent)]
    SignInRequired(#[from] SignInRequired),
    #[error(transparent)]
    Auth(AuthError),
    #[error(
        "Partner Center refused access (403{code}): {message}. The signed-in user needs the Referrals Admin or Referrals User role in Partner Center (Account settings > User management), and the app needs admin consent for the delegated Microsoft Partner permission. Request id: {request_id}."
    )]
    Forbidden {
        code: String,
        message: String,
        request_id: String,
    },
    #[error(
        "Partner Center rejected {path} with {status}{code}: {message} (request id: {request_id})."
    )]
    Rejected {
        path: String,
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error(
        "Partner Center answered {path} with a {status} redirect to {location}, which is not followed: the token and the data stay with `api_url`. Point `api_url` at the API itself, not at something that redirects."
    )]
    Redirected {
        path: String,
        status: u16,
        location: String,
    },
    #[error(
        "Partner Center kept failing on {path} after {attempts} attempts; last failure: {last}. Check the service status and retry later, or raise retry_max_attempts."
    )]
    RetriesExhausted {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "This run spent its whole retry budget ({budget} retries); last failure on {path}: {last}. Partner Center is unstable; the next run goes on from the last committed page, or raise retry_budget."
    )]
    BudgetExhausted {
        path: String,
        budget: u32,
        last: String,
    },
    #[error(
        "Partner Center sent the same @odata.nextLink twice ({query}); stopping so paging cannot loop forever. Report this; the next run starts again from the first page."
    )]
    RepeatedNextLink { query: String },
    #[error(
        "Partner Center sent an @odata.nextLink without a query string ({link}); refusing to restart from the first page."
    )]
    BadNextLink { link: String },
}

impl PcError {
    /// A 400 on a filtered list: the API does not accept our `$filter`.
    pub(crate) fn is_bad_request(&self) -> bool {
        matches!(self, PcError::Rejected { status: 400, .. })
    }
}
