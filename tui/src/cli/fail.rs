//! A command's failure and its exit code (the codes `confab --help` and docs/CLI.md list).

use confab_wire::pb::ErrorCode;

use crate::client::{ApiError, ClientError};

pub const OTHER: u8 = 1;
pub const USAGE: u8 = 2;
pub const AUTH: u8 = 3;
pub const NOT_FOUND: u8 = 4;
pub const REFUSED: u8 = 5;
pub const UNREACHABLE: u8 = 6;

/// A failure with its exit code and the message printed on standard error.
#[derive(Debug)]
pub struct Fail(pub u8, pub String);

impl Fail {
    pub fn usage(msg: impl Into<String>) -> Self {
        Fail(USAGE, msg.into())
    }
}

/// The exit code for a server's refusal.
pub fn code_exit(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::AuthFailed | ErrorCode::Unauthenticated | ErrorCode::AccountDisabled => AUTH,
        ErrorCode::NotFound => NOT_FOUND,
        ErrorCode::Unavailable | ErrorCode::ShuttingDown | ErrorCode::Timeout => UNREACHABLE,
        _ => REFUSED,
    }
}

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Server(err) => ErrorCode::try_from(err.code).map_or(REFUSED, code_exit),
            ClientError::Timeout | ClientError::Disconnected => UNREACHABLE,
            _ => OTHER,
        };
        Fail(code, e.to_string())
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Client(e) => e.into(),
            ApiError::NotFriend(name) => Fail(
                REFUSED,
                format!("{name} is not your friend (send `confab add {name}` first)"),
            ),
            e @ (ApiError::NoSuchUser(_)
            | ApiError::NoSuchGroup { .. }
            | ApiError::NoSuchRequest(_)
            | ApiError::NotAMember { .. }) => Fail(NOT_FOUND, e.to_string()),
        }
    }
}
