//! How the admin tool reaches the store: the running server's admin socket, or a service of
//! its own on the store (no server runs on the embedded store, or the store is MySQL).

use std::sync::Arc;
use std::time::Duration;

use confab_wire::{Body, Envelope, EnvelopeCodec};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

use super::Failed;
use crate::config::Config;
use crate::hub::{ConnCtl, Hub};
use crate::net::admin::socket_path;
use crate::service::{ConnCtx, Hasher, Outcome, Service, Session};
use crate::store::mysql::MysqlBackend;
use crate::store::sqlite::SqliteBackend;
use crate::store::{Backend, Store};

/// The longest a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

type Call = Box<dyn Fn(u64, Body) -> BoxFuture<'static, Outcome> + Send>;

pub enum Link {
    Socket {
        framed: Framed<UnixStream, EnvelopeCodec>,
        next: u64,
    },
    Local {
        call: Call,
        next: u64,
        close: BoxFuture<'static, ()>,
    },
}

fn unavailable(msg: String) -> Failed {
    Failed(6, msg)
}

impl Link {
    pub async fn open(mut cfg: Config) -> Result<Link, Failed> {
        let path = socket_path(&cfg.data_dir);
        match UnixStream::connect(&path).await {
            Ok(stream) => return Link::socket(stream, cfg.max_frame_bytes).await,
            // No server here: the tool opens the store itself (the embedded store's lock says
            // if a server holds it).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => {
                return Err(unavailable(format!(
                    "cannot reach the server's admin socket {}: {e}",
                    path.display()
                )));
            }
        }
        if cfg.mysql_url.is_some() && cfg.bus_url.is_none() {
            tracing::warn!(
                "no server's admin socket in --data-dir and no --bus: changes are stored, but \
                 sessions a deactivation or revocation ends close only when they next reconnect"
            );
        }
        cfg.node_id = super::NODE_ID;
        let hasher = Hasher::new(1).map_err(|e| Failed(1, e.to_string()))?;
        match cfg.mysql_url.clone() {
            Some(url) => {
                let backend = MysqlBackend::open(&crate::mysql_config(&cfg, url))
                    .await
                    .map_err(|e| unavailable(format!("cannot open the store: {e}")))?;
                let hub = Arc::new(Hub::new());
                let bus = crate::cluster::connect(&cfg, hub.clone())
                    .await
                    .map_err(|e| unavailable(format!("cannot join the cluster bus: {e}")))?;
                let svc = Service::start_with(cfg, Store::new(backend), hasher, hub, bus.clone());
                Ok(Link::local(svc, Some(bus)))
            }
            None => {
                let mut scfg = crate::sqlite_config(&cfg);
                scfg.lock_wait = Duration::from_millis(200);
                let backend = SqliteBackend::open(&scfg).map_err(|e| {
                    unavailable(format!(
                        "cannot open the store ({e}); if a confab-server runs on it, its admin socket {} did not answer",
                        socket_path(&cfg.data_dir).display()
                    ))
                })?;
                Ok(Link::local(
                    Service::start(cfg, Store::new(backend), hasher),
                    None,
                ))
            }
        }
    }

    async fn socket(stream: UnixStream, max_frame: u32) -> Result<Link, Failed> {
        let framed = Framed::new(stream, EnvelopeCodec::with_max_frame(max_frame as usize));
        let mut link = Link::Socket { framed, next: 1 };
        match link.call(Body::Hello(super::hello())).await? {
            Body::HelloOk(_) => Ok(link),
            other => Err(Failed(
                1,
                format!(
                    "the server answered Hello with {}",
                    confab_wire::body_name(&other)
                ),
            )),
        }
    }

    fn local<B: Backend>(svc: Arc<Service<B>>, bus: Option<Arc<dyn crate::cluster::Bus>>) -> Link {
        let (out, _) = tokio::sync::mpsc::channel(16);
        let ctx = ConnCtx {
            conn_id: 1 << 62,
            peer: std::net::IpAddr::from([127, 0, 0, 1]),
            session: Some(Session::console()),
            out,
            ctl: Arc::new(ConnCtl::default()),
            quiet: true,
            client: "confab-server admin".into(),
            operator: true,
        };
        let closing = svc.clone();
        let close: BoxFuture<'static, ()> = Box::pin(async move {
            // Kicks go out to the other nodes before the tool leaves the cluster.
            if let Some(bus) = bus {
                bus.close().await;
            }
            closing.close_store();
        });
        let call: Call = Box::new(move |req_id, body| svc.dispatch(&ctx, req_id, body));
        Link::Local {
            call,
            next: 1,
            close,
        }
    }

    /// Sends one request and waits for its reply; an Error reply is a failure.
    pub async fn call(&mut self, body: Body) -> Result<Body, Failed> {
        let reply = match self {
            Link::Socket { framed, next } => {
                let req_id = *next;
                *next += 1;
                framed
                    .send(Envelope::new(req_id, body))
                    .await
                    .map_err(|e| unavailable(format!("admin socket: {e}")))?;
                let wait = async {
                    while let Some(frame) = framed.next().await {
                        match frame {
                            Ok(env) if env.req_id == req_id => return Ok(env.body),
                            // A push, or a notice to no request in particular.
                            Ok(Envelope {
                                body: Some(Body::Error(e)),
                                ..
                            }) if e.fatal => return Err(Failed::from_error(&e)),
                            Ok(_) => {}
                            Err(e) => return Err(unavailable(format!("admin socket: {e}"))),
                        }
                    }
                    Err(unavailable("the server closed the admin socket".into()))
                };
                tokio::time::timeout(REPLY_TIMEOUT, wait)
                    .await
                    .map_err(|_| unavailable("no reply from the server in time".into()))??
            }
            Link::Local { call, next, .. } => {
                let req_id = *next;
                *next += 1;
                call(req_id, body).await.reply.and_then(|env| env.body)
            }
        };
        match reply {
            Some(Body::Error(e)) => Err(Failed::from_error(&e)),
            Some(b) => Ok(b),
            None => Err(Failed(1, "no reply".into())),
        }
    }

    pub async fn close(self) {
        if let Link::Local { close, .. } = self {
            close.await;
        }
    }
}
