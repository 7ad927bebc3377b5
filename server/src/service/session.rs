//! Hello, registration, login, resume, logout, password change, and attaching a session to
//! the hub.

use std::net::IpAddr;
use std::sync::Arc;

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, PROTOCOL_MAJOR, PROTOCOL_MINOR};

use crate::cluster::KickScope;
use crate::config::Registration;
use crate::hub::{ConnHandle, Kick};
use crate::ids::now_ms;
use crate::store::ops::{accounts, removal};
use crate::store::{Backend, StoreError};

use super::*;

impl<B: Backend> Service<B> {
    /// Answers a Hello ([`gate::frame`] checked its req_id and major). With a resume token, the
    /// connection is authenticated in the same round trip.
    pub async fn hello(self: &Arc<Self>, ctx: &ConnCtx, req_id: u64, hello: pb::Hello) -> Outcome {
        // The session speaks the lower of the two minors.
        #[allow(clippy::unnecessary_min_or_max)]
        let minor = hello.protocol_minor.min(PROTOCOL_MINOR);
        let mut ok = pb::HelloOk {
            protocol_major: PROTOCOL_MAJOR,
            protocol_minor: minor,
            server_name: "confab-server".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            heartbeat_interval_ms: self.cfg.heartbeat_ms,
            idle_timeout_ms: self.cfg.idle_timeout_ms,
            max_frame_bytes: self.cfg.max_frame_bytes,
            server_time_ms: now_ms(),
            limits: Some(self.limits()),
            auth: None,
            resume_failed: false,
            node_id: u64::from(self.cfg.node_id),
            registration: match self.cfg.registration {
                Registration::Open => pb::Registration::Open,
                Registration::Invite => pb::Registration::Invite,
                Registration::Closed => pb::Registration::Closed,
            } as i32,
        };
        let mut auth = AuthChange::Unchanged;
        if !hello.resume_token.is_empty() {
            match self.resume_session(ctx, &hello.resume_token).await {
                Ok((auth_ok, session)) => {
                    ok.auth = Some(auth_ok);
                    auth = AuthChange::LoggedIn(session);
                }
                Err(e) if e.code == ErrorCode::AuthFailed as i32 => ok.resume_failed = true,
                Err(e) => return Outcome::error(req_id, e.fatal()),
            }
        }
        Outcome {
            reply: Some(Envelope::new(req_id, Body::HelloOk(ok))),
            auth,
        }
    }

    pub(super) fn check_auth_rate(&self, ip: IpAddr, name_key: Option<&str>) -> Res<()> {
        use governor::clock::{Clock, DefaultClock};
        let clock = DefaultClock::default();
        let wait = |nu: governor::NotUntil<_>| {
            let ms = nu.wait_time_from(clock.now()).as_millis();
            err(ErrorCode::RateLimited, "too many attempts; wait and retry")
                .retry_after(u32::try_from(ms).unwrap_or(u32::MAX).max(1))
        };
        self.ip_limiter.check_key(&ip).map_err(wait)?;
        if let Some(key) = name_key {
            self.name_limiter.check_key(&key.to_owned()).map_err(wait)?;
        }
        Ok(())
    }

    /// Puts the connection in the hub (and its route in the cluster, before the AuthOk goes
    /// out) and announces presence if it is the user's first.
    pub(super) async fn attach(self: &Arc<Self>, ctx: &ConnCtx, session: &Session) {
        let reg = self.hub.register(ConnHandle {
            conn_id: ctx.conn_id,
            user_id: session.user.user_id,
            device_id: session.device_id,
            tx: ctx.out.clone(),
            ctl: ctx.ctl.clone(),
            quiet: ctx.quiet,
        });
        self.bus
            .attached(session.user.user_id, session.device_id)
            .await;
        if reg.first {
            let svc = self.clone();
            let user = session.user.clone();
            tokio::spawn(async move { svc.announce_presence(user, true).await });
        }
    }

    /// Called by the connection when it closes. A quiet connection is never the last online
    /// one (the hub does not count it), so its end announces nothing.
    pub fn detach(self: &Arc<Self>, conn_id: u64, session: &Session) {
        let last = self.hub.unregister(session.user.user_id, conn_id);
        if self.bus.clustered() {
            let svc = self.clone();
            let (uid, dev) = (session.user.user_id, session.device_id);
            let user = session.user.clone();
            // The route goes first: the presence check below must not count this device.
            tokio::spawn(async move {
                svc.bus.detached(uid, dev).await;
                if last {
                    svc.went_offline(user).await;
                }
            });
        } else if last {
            let svc = self.clone();
            let user = session.user.clone();
            tokio::spawn(async move { svc.went_offline(user).await });
        }
    }

    pub(super) fn auth_ok(&self, s: &accounts::Session, token: String) -> pb::AuthOk {
        pb::AuthOk {
            user: Some(s.user.clone()),
            device_id: s.device_id,
            resume_token: token,
            last_event_seq: s.last_event_seq,
        }
    }

    pub(super) async fn logged_in(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        req_id: u64,
        s: accounts::Session,
        token: String,
    ) -> Outcome {
        let session = Session {
            user: s.user.clone(),
            device_id: s.device_id,
        };
        self.attach(ctx, &session).await;
        Outcome {
            reply: Some(Envelope::new(req_id, Body::AuthOk(self.auth_ok(&s, token)))),
            auth: AuthChange::LoggedIn(session),
        }
    }

    pub(super) async fn register(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        req_id: u64,
        r: pb::Register,
    ) -> Outcome {
        let res: Res<(accounts::Session, String)> = async {
            let invite = self.registration_allowed(&r.invite_code)?;
            let name = validate::user_name(&r.name).map_err(bad)?;
            validate::password(&r.password).map_err(bad)?;
            self.check_auth_rate(ctx.peer, Some(&name.key))?;
            let hash = self.hasher.hash(r.password).await.map_err(hash_err)?;
            let (token, token_hash) = auth::new_token();
            let device = accounts::NewDevice {
                name: validate::device_name(&r.device_name),
                client: ctx.client.clone(),
                address: ctx.peer.to_string(),
            };
            let account = accounts::NewAccount {
                name: name.display,
                name_key: name.key,
                password_hash: hash,
                invite,
                name_hold_ms: i64::try_from(self.cfg.deleted_name_hold.as_millis())
                    .unwrap_or(i64::MAX),
            };
            let s = self
                .store
                .write(move |tx| {
                    Box::pin(
                        async move { accounts::register(tx, &account, &device, &token_hash).await },
                    )
                })
                .await?;
            Ok((s, token))
        }
        .await;
        match res {
            Ok((s, token)) => self.logged_in(ctx, req_id, s, token).await,
            Err(e) => Outcome::error(req_id, e),
        }
    }

    /// What the registration policy asks of a Register: the invitation to redeem, if any.
    fn registration_allowed(&self, code: &str) -> Res<Option<(u64, Vec<u8>)>> {
        match self.cfg.registration {
            Registration::Open => Ok(None),
            Registration::Closed => Err(err(
                ErrorCode::Forbidden,
                "registration is closed on this server",
            )),
            Registration::Invite if code.trim().is_empty() => Err(err(
                ErrorCode::Forbidden,
                "registration here needs an invitation code",
            )),
            Registration::Invite => auth::parse_invite(code)
                .map(Some)
                .ok_or_else(|| err(ErrorCode::Forbidden, crate::store::ops::invites::INVALID)),
        }
    }

    pub(super) async fn login(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        req_id: u64,
        l: pb::Login,
    ) -> Outcome {
        let res: Res<(accounts::Session, String)> = async {
            let failed = || err(ErrorCode::AuthFailed, "wrong name or password");
            let key = validate::name_key(&l.name);
            self.check_auth_rate(ctx.peer, Some(&key))?;
            let lookup = key.clone();
            let creds = self
                .store
                .read(move |tx| Box::pin(async move { accounts::credentials(tx, &lookup).await }))
                .await?;
            // Unknown names are verified against a dummy hash: the same time either way.
            let ok = self
                .hasher
                .verify(l.password, creds.as_ref().map(|c| c.password_hash.clone()))
                .await
                .map_err(hash_err)?;
            let creds = match creds {
                Some(c) if ok => c,
                _ => return Err(failed()),
            };
            // Said only to someone who knows the password.
            if creds.disabled {
                return Err(err(
                    ErrorCode::AccountDisabled,
                    "this account was deactivated by an administrator",
                ));
            }
            let (token, token_hash) = auth::new_token();
            let device = accounts::NewDevice {
                name: validate::device_name(&l.device_name),
                client: ctx.client.clone(),
                address: ctx.peer.to_string(),
            };
            let s = self
                .store
                .write(move |tx| {
                    Box::pin(
                        async move { accounts::login(tx, creds.user, &device, &token_hash).await },
                    )
                })
                .await?;
            Ok((s, token))
        }
        .await;
        match res {
            Ok((s, token)) => self.logged_in(ctx, req_id, s, token).await,
            Err(e) => Outcome::error(req_id, e),
        }
    }

    pub(super) async fn resume_session(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        token: &str,
    ) -> Res<(pb::AuthOk, Session)> {
        if token.is_empty() || token.len() > 256 {
            return Err(err(ErrorCode::AuthFailed, "invalid resume token"));
        }
        let old_hash = auth::token_hash(token);
        let (new_token, new_hash) = auth::new_token();
        let grace_ms = i64::from(self.cfg.token_grace_ms);
        let idle_ms = i64::try_from(self.cfg.session_idle.as_millis()).unwrap_or(i64::MAX);
        let s = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    accounts::resume(tx, &old_hash, &new_hash, grace_ms, idle_ms).await
                })
            })
            .await
            .map_err(|e| match e {
                StoreError::AuthFailed => {
                    err(ErrorCode::AuthFailed, "invalid or revoked resume token")
                }
                other => other.into(),
            })?;
        let session = Session {
            user: s.user.clone(),
            device_id: s.device_id,
        };
        self.attach(ctx, &session).await;
        Ok((self.auth_ok(&s, new_token), session))
    }

    pub(super) async fn resume(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        req_id: u64,
        token: &str,
    ) -> Outcome {
        match self.resume_session(ctx, token).await {
            Ok((ok, session)) => Outcome {
                reply: Some(Envelope::new(req_id, Body::AuthOk(ok))),
                auth: AuthChange::LoggedIn(session),
            },
            Err(e) => Outcome::error(req_id, e),
        }
    }

    pub(super) async fn logout(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        s: &Session,
        req_id: u64,
        l: pb::Logout,
    ) -> Outcome {
        let (uid, dev, all) = (s.user.user_id, s.device_id, l.all_devices);
        let res = self
            .store
            .write(move |tx| Box::pin(async move { accounts::logout(tx, uid, dev, all).await }))
            .await;
        match res {
            Ok(()) => {
                // Every other connection of the revoked session(s) is closed.
                let me = ctx.conn_id;
                self.hub.kick_where(uid, Kick::Revoked, |c| {
                    c.conn_id != me && (all || c.device_id == dev)
                });
                self.bus.kick(
                    uid,
                    if all {
                        KickScope::All
                    } else {
                        KickScope::Device(dev)
                    },
                );
                self.detach(ctx.conn_id, s);
                Outcome {
                    reply: Some(Envelope::new(req_id, Body::Ok(pb::Ok {}))),
                    auth: AuthChange::LoggedOut,
                }
            }
            Err(e) => Outcome::error(req_id, e.into()),
        }
    }

    /// RevokeDevice: the session ends on every node at once, like a logout of that device.
    pub(super) async fn revoke_device(
        self: &Arc<Self>,
        s: &Session,
        req_id: u64,
        r: pb::RevokeDevice,
    ) -> Outcome {
        let (uid, this, dev) = (s.user.user_id, s.device_id, r.device_id);
        if dev == 0 {
            return Outcome::error(req_id, bad("device_id is required"));
        }
        let res = self
            .store
            .write(move |tx| {
                Box::pin(async move { accounts::revoke_device(tx, uid, dev, this).await })
            })
            .await;
        match res {
            Ok(()) => {
                self.hub
                    .kick_where(uid, Kick::Revoked, |c| c.device_id == dev);
                self.bus.kick(uid, KickScope::Device(dev));
                Outcome::reply(Envelope::new(req_id, Body::Ok(pb::Ok {})))
            }
            Err(e) => Outcome::error(req_id, e.into()),
        }
    }

    pub(super) async fn change_password(
        self: &Arc<Self>,
        _ctx: &ConnCtx,
        s: &Session,
        req_id: u64,
        c: pb::ChangePassword,
    ) -> Outcome {
        let res: Res<(accounts::Session, String)> = async {
            validate::password(&c.new_password).map_err(bad)?;
            let uid = s.user.user_id;
            let stored = self
                .store
                .read(move |tx| Box::pin(async move { accounts::password_hash(tx, uid).await }))
                .await?;
            let ok = self
                .hasher
                .verify(c.old_password, Some(stored))
                .await
                .map_err(hash_err)?;
            if !ok {
                return Err(err(ErrorCode::AuthFailed, "the old password is wrong"));
            }
            let hash = self.hasher.hash(c.new_password).await.map_err(hash_err)?;
            let (token, token_hash) = auth::new_token();
            let (user, dev) = (s.user.clone(), s.device_id);
            let session = self
                .store
                .write(move |tx| {
                    Box::pin(async move {
                        accounts::change_password(tx, user, dev, &hash, &token_hash).await
                    })
                })
                .await?;
            self.hub
                .kick_where(uid, Kick::Revoked, |c| c.device_id != dev);
            self.bus.kick(uid, KickScope::AllBut(dev));
            Ok((session, token))
        }
        .await;
        match res {
            Ok((session, token)) => Outcome::reply(Envelope::new(
                req_id,
                Body::AuthOk(self.auth_ok(&session, token)),
            )),
            Err(e) => Outcome::error(req_id, e),
        }
    }

    /// DeleteAccount: checks the password, then erases the account in one transaction
    /// (store/ops/removal.rs) and ends every session of it at once.
    pub(super) async fn delete_account(
        self: &Arc<Self>,
        ctx: &ConnCtx,
        s: &Session,
        req_id: u64,
        d: pb::DeleteAccount,
    ) -> Outcome {
        let res: Res<()> = async {
            let uid = s.user.user_id;
            let stored = read!(self, tx => accounts::password_hash(tx, uid).await);
            let ok = self
                .hasher
                .verify(d.password, Some(stored))
                .await
                .map_err(hash_err)?;
            if !ok {
                return Err(err(ErrorCode::AuthFailed, "the password is wrong"));
            }
            let (ids, user) = (self.ids.clone(), s.user.clone());
            write!(self, ctx.conn_id, tx => removal::delete_account(tx, &ids, &user).await.map(|fx| ((), fx)));
            Ok(())
        }
        .await;
        match res {
            Ok(()) => {
                let (uid, me) = (s.user.user_id, ctx.conn_id);
                self.hub.kick_where(uid, Kick::Revoked, |c| c.conn_id != me);
                self.bus.kick(uid, KickScope::All);
                self.detach(ctx.conn_id, s);
                Outcome {
                    reply: Some(Envelope::new(req_id, Body::Ok(pb::Ok {}))),
                    auth: AuthChange::LoggedOut,
                }
            }
            Err(e) => Outcome::error(req_id, e),
        }
    }
}
