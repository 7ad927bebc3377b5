//! The protocol's state rules in one place (PROTOCOL.md §3 and §4.1): Hello first, Ping answered
//! at once, which bodies change authentication (and so run alone), which may be notifications,
//! and what each authentication state accepts.
//!
//! Two stages, because the rate limit sits between them (every envelope with a body except
//! `Ping` counts, even one refused afterwards): the connection task asks [`frame`] about each
//! decoded envelope, counts what it passes on against its limits and hands it to
//! [`Service::dispatch`](super::Service::dispatch), which asks [`admit`] before routing it.

use confab_wire::pb::{self, ErrorCode};
use confab_wire::{Body, Envelope, PROTOCOL_MAJOR};

use super::{Outcome, Session, err, error_reply};
use crate::ids::now_ms;

/// What the connection does with one decoded envelope.
#[derive(Debug)]
pub enum Step {
    /// Nothing to do: a keepalive, or an unknown body with `req_id` 0.
    Ignore,
    /// Send this reply now: it is not rate limited and does not count as in flight.
    Reply(Envelope),
    /// Send this fatal error (answering this `req_id`, or 0) and close.
    Close(pb::Error, u64),
    /// Run this `Hello` ([`Service::hello`](super::Service::hello)), alone.
    Hello(pb::Hello),
    /// A request or notification for [`Service::dispatch`](super::Service::dispatch), after the
    /// rate limit and the in-flight cap. `exclusive`: it changes authentication, so nothing
    /// else is read until it is answered.
    Request { body: Body, exclusive: bool },
}

/// The first stage, for every decoded envelope: `hello_done` says whether `HelloOk` was sent
/// on this connection.
pub fn frame(hello_done: bool, req_id: u64, body: Option<Body>) -> Step {
    let Some(body) = body else {
        // §3: unknown or missing body, in every state; neither counts as the Hello.
        return if req_id == 0 {
            Step::Ignore
        } else {
            Step::Reply(error_reply(
                req_id,
                err(ErrorCode::Unsupported, "unknown or missing body"),
            ))
        };
    };
    if !hello_done {
        return hello(req_id, body);
    }
    match body {
        // Answered inline and exempt from the rate limit: it is how clients stay alive. With
        // req_id 0 it is a request sent as a notification, refused by `admit`.
        Body::Ping(p) if req_id != 0 => Step::Reply(Envelope::new(
            req_id,
            Body::Pong(pb::Pong {
                nonce: p.nonce,
                server_time_ms: now_ms(),
            }),
        )),
        body => Step::Request {
            exclusive: changes_auth(&body),
            body,
        },
    }
}

/// CONNECTED (§4.1, §4.2): only a `Hello` with a `req_id` and a major this server speaks.
fn hello(req_id: u64, body: Body) -> Step {
    let Body::Hello(hello) = body else {
        return Step::Close(
            err(ErrorCode::Unauthenticated, "the first frame must be Hello").fatal(),
            req_id,
        );
    };
    if req_id == 0 {
        // Hello is a request: it needs a req_id to be answered with.
        return Step::Close(
            err(ErrorCode::BadRequest, "Hello needs a req_id above 0").fatal(),
            0,
        );
    }
    if hello.protocol_major != PROTOCOL_MAJOR {
        return Step::Close(
            err(
                ErrorCode::UnsupportedVersion,
                format!("this server speaks protocol {PROTOCOL_MAJOR}.x"),
            )
            .fatal(),
            req_id,
        );
    }
    Step::Hello(hello)
}

/// Bodies that change the connection's authentication: they run alone.
pub fn changes_auth(body: &Body) -> bool {
    matches!(
        body,
        Body::Register(_)
            | Body::Login(_)
            | Body::Resume(_)
            | Body::Logout(_)
            | Body::ChangePassword(_)
            | Body::DeleteAccount(_)
    )
}

/// What [`admit`] makes of a request.
#[derive(Debug)]
pub(super) enum Admit {
    /// Not run in this state: the answer (no reply for an ignored echo).
    Answer(Outcome),
    /// Signing in, on a connection without a session.
    SignIn(SignIn),
    /// Anything else, asked by this session.
    Session(Session, Body),
}

#[derive(Debug)]
pub(super) enum SignIn {
    Register(pb::Register),
    Login(pb::Login),
    Resume(pb::Resume),
}

/// The second stage, after the limits: what runs, or the answer to what this state does not.
pub(super) fn admit(session: Option<&Session>, req_id: u64, body: Body) -> Admit {
    let notification = req_id == 0;
    if confab_wire::is_server_body(&body) {
        // §3 wrong direction, before the state check: ignored as a notification, UNSUPPORTED
        // as a request, in every state.
        return Admit::Answer(if notification {
            Outcome::none()
        } else {
            Outcome::error(
                req_id,
                err(
                    ErrorCode::Unsupported,
                    format!("{} is not a request", confab_wire::body_name(&body)),
                ),
            )
        });
    }
    if notification
        && !matches!(
            body,
            Body::Typing(_) | Body::DeliveredUpTo(_) | Body::ReadUpTo(_)
        )
    {
        return Admit::Answer(Outcome::error(
            0,
            err(
                ErrorCode::BadRequest,
                "only Typing, DeliveredUpTo and ReadUpTo may be sent without a req_id",
            ),
        ));
    }
    let refuse = |code, msg: &str| Admit::Answer(Outcome::error(req_id, err(code, msg)));
    match (session, body) {
        (None, Body::Register(r)) => Admit::SignIn(SignIn::Register(r)),
        (None, Body::Login(l)) => Admit::SignIn(SignIn::Login(l)),
        (None, Body::Resume(r)) => Admit::SignIn(SignIn::Resume(r)),
        (None, Body::Hello(_)) => refuse(ErrorCode::Conflict, "Hello was already sent"),
        (None, _) => refuse(ErrorCode::Unauthenticated, "log in first"),
        (Some(_), Body::Hello(_) | Body::Register(_) | Body::Login(_) | Body::Resume(_)) => {
            refuse(ErrorCode::Conflict, "already authenticated")
        }
        (Some(s), body) => Admit::Session(s.clone(), body),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

    use super::*;

    fn code(o: &Outcome) -> (u64, i32) {
        match &o.reply {
            Some(Envelope {
                req_id,
                body: Some(Body::Error(e)),
            }) => (*req_id, e.code),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn hello_body(major: u32) -> Body {
        Body::Hello(pb::Hello {
            protocol_major: major,
            ..Default::default()
        })
    }

    fn ping() -> Body {
        Body::Ping(pb::Ping { nonce: 9 })
    }

    fn session() -> Session {
        Session {
            user: pb::User {
                user_id: 1,
                name: "a".into(),
            },
            device_id: 2,
        }
    }

    #[test]
    fn before_hello_only_a_hello_with_a_req_id_and_our_major_passes() {
        assert!(matches!(
            frame(false, 3, Some(hello_body(PROTOCOL_MAJOR))),
            Step::Hello(_)
        ));
        let closes = |step: Step| match step {
            Step::Close(e, req) => {
                assert!(e.fatal);
                (req, e.code)
            }
            other => panic!("expected a close, got {other:?}"),
        };
        assert_eq!(
            closes(frame(false, 3, Some(ping()))),
            (3, ErrorCode::Unauthenticated as i32)
        );
        assert_eq!(
            closes(frame(false, 0, Some(hello_body(PROTOCOL_MAJOR)))),
            (0, ErrorCode::BadRequest as i32)
        );
        assert_eq!(
            closes(frame(false, 4, Some(hello_body(PROTOCOL_MAJOR + 1)))),
            (4, ErrorCode::UnsupportedVersion as i32)
        );
    }

    #[test]
    fn a_missing_body_is_ignored_or_unsupported_in_every_state() {
        for done in [false, true] {
            assert!(matches!(frame(done, 0, None), Step::Ignore));
            match frame(done, 5, None) {
                Step::Reply(Envelope {
                    req_id: 5,
                    body: Some(Body::Error(e)),
                }) => assert_eq!(e.code, ErrorCode::Unsupported as i32),
                other => panic!("expected UNSUPPORTED, got {other:?}"),
            }
        }
    }

    #[test]
    fn ping_is_answered_at_once_and_auth_bodies_run_alone() {
        match frame(true, 7, Some(ping())) {
            Step::Reply(Envelope {
                req_id: 7,
                body: Some(Body::Pong(p)),
            }) => assert_eq!(p.nonce, 9),
            other => panic!("expected a Pong, got {other:?}"),
        }
        // A Ping sent as a notification goes on, to be refused by `admit`.
        assert!(matches!(
            frame(true, 0, Some(ping())),
            Step::Request {
                exclusive: false,
                ..
            }
        ));
        let login = Body::Login(pb::Login::default());
        assert!(matches!(
            frame(true, 1, Some(login)),
            Step::Request {
                exclusive: true,
                ..
            }
        ));
    }

    #[test]
    fn admit_follows_the_state_table() {
        let s = session();
        let answer = |a: Admit| match a {
            Admit::Answer(o) => o,
            other => panic!("expected an answer, got {other:?}"),
        };
        // Server bodies: ignored as notifications, UNSUPPORTED as requests, in both states.
        for who in [None, Some(&s)] {
            let pong = || Body::Pong(pb::Pong::default());
            assert!(answer(admit(who, 0, pong())).reply.is_none());
            let o = answer(admit(who, 2, pong()));
            assert_eq!(code(&o), (2, ErrorCode::Unsupported as i32));
            let o = answer(admit(who, 0, Body::ListFriends(Default::default())));
            assert_eq!(code(&o), (0, ErrorCode::BadRequest as i32));
            let o = answer(admit(who, 3, hello_body(1)));
            assert_eq!(code(&o), (3, ErrorCode::Conflict as i32));
        }
        let o = answer(admit(None, 0, Body::Typing(Default::default())));
        assert_eq!(code(&o), (0, ErrorCode::Unauthenticated as i32));
        assert!(matches!(
            admit(None, 1, Body::Resume(Default::default())),
            Admit::SignIn(SignIn::Resume(_))
        ));
        let o = answer(admit(Some(&s), 1, Body::Login(Default::default())));
        assert_eq!(code(&o), (1, ErrorCode::Conflict as i32));
        assert!(matches!(
            admit(Some(&s), 0, Body::Typing(Default::default())),
            Admit::Session(_, Body::Typing(_))
        ));
    }
}
