//! The shared session file ([`SessionFile`]): read before every resume, replaced after every
//! successful authentication, so every process of one account on a machine resumes with the
//! newest token instead of one another process has already used up.

use confab_wire::pb::{self, ErrorCode};
use tracing::warn;

use super::Engine;
use crate::client::Auth;
use crate::client::paths::StoredSession;

impl Engine {
    /// Whether the file's session is this engine's: the same user and device once
    /// authenticated; before that, any session when we were started from a stored token (the
    /// caller read it from this file a moment ago).
    fn owns(&self, f: &StoredSession) -> bool {
        match &self.user {
            Some(u) if self.device_id != 0 => {
                f.user_id == u.user_id && f.device_id == self.device_id
            }
            _ => matches!(self.auth, Auth::Token(_)),
        }
    }

    /// The token to resume with: the file's when it holds this session, else the one in memory.
    pub(super) fn resume_token(&mut self) -> Option<String> {
        if let Some(f) = self.cfg.session.as_ref().and_then(|s| s.read())
            && self.owns(&f)
        {
            self.token = Some(f.token);
        }
        self.token.clone()
    }

    /// The file's token when it holds this session and is not `sent`: another process rotated
    /// the token since, so a refusal of `sent` says nothing about the session.
    pub(super) fn newer_file_token(&self, sent: &str) -> Option<String> {
        let f = self.cfg.session.as_ref()?.read()?;
        (self.owns(&f) && f.token != sent).then_some(f.token)
    }

    /// A refusal of the session (`AUTH_FAILED`, `UNAUTHENTICATED`) while the file holds a
    /// newer token of it: the session did not end, only our token aged.
    pub(super) fn refused_for_stale_token(&self, code: ErrorCode) -> bool {
        matches!(code, ErrorCode::AuthFailed | ErrorCode::Unauthenticated)
            && self
                .token
                .as_deref()
                .is_some_and(|t| self.newer_file_token(t).is_some())
    }

    /// Writes a successful authentication back: a password login replaces the file, a resume
    /// only a file that still holds this device's session.
    pub(super) fn store_session(&self, auth: &pb::AuthOk, by_password: bool) {
        let (Some(file), Some(user)) = (&self.cfg.session, &auth.user) else {
            return;
        };
        let s = StoredSession {
            server: file.server.clone(),
            name: user.name.clone(),
            user_id: user.user_id,
            device_id: auth.device_id,
            token: auth.resume_token.clone(),
        };
        let res = if by_password {
            file.store_login(&s)
        } else {
            file.store_rotated(&s).map(|_| ())
        };
        if let Err(e) = res {
            warn!(error = %e, "cannot save the session");
        }
    }

    /// An `AuthOk` outside the handshake (the reply to `ChangePassword`): this device's new
    /// token replaces the old one in memory and in the session file, and the caller's
    /// `Event::Session` carries it.
    pub(super) async fn adopt_session(&mut self, auth: &pb::AuthOk) {
        self.token = Some(auth.resume_token.clone());
        self.store_session(auth, true);
        if let Some(user) = auth.user.clone() {
            self.emit(crate::client::Event::Session {
                user,
                device_id: auth.device_id,
                token: auth.resume_token.clone(),
            })
            .await;
        }
    }
}
