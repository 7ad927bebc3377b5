//! Password hashing (argon2id, crate defaults = OWASP) on a few dedicated threads fed by a
//! bounded queue (`Busy` when it is full), and resume tokens (random, stored only as SHA-256).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Failures of the hasher itself (not a wrong password).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing pool is gone")]
    Closed,
    #[error("too many password checks waiting")]
    Busy,
}

type Job = Box<dyn FnOnce() + Send>;

/// Waiting hash jobs beyond the running ones; more are refused (the caller is rate limited).
const QUEUE: usize = 256;

/// Runs argon2 on `concurrency` dedicated threads, so logins never stall chat traffic and
/// memory stays bounded: each hash needs 19 MiB, and a fixed set of threads reuses the same
/// memory instead of leaving it behind in the allocator arenas of many pool threads.
#[derive(Clone)]
pub struct Hasher {
    jobs: crossbeam_channel::Sender<Job>,
    dummy: Arc<str>,
    argon: Argon2<'static>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        Self::with_params(concurrency, Params::default())
    }

    /// A hasher at argon2id's minimum cost (8 KiB, one pass): for tests and the service fuzz
    /// target (server/fuzz), which sign in thousands of times a second. Never for real
    /// passwords. A hash records its own parameters, so verifying works across both.
    pub fn minimum_cost(concurrency: usize) -> Result<Self, HashError> {
        let params = Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None)
            .map_err(|e| HashError::Hash(e.to_string()))?;
        Self::with_params(concurrency, params)
    }

    fn with_params(concurrency: usize, params: Params) -> Result<Self, HashError> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut pw = [0u8; 16];
        rand::rng().fill_bytes(&mut pw);
        // Verifying unknown names against this costs the same as a real verify.
        let dummy = hash_blocking(
            &argon,
            &base64::engine::general_purpose::STANDARD.encode(pw),
        )?;
        let (jobs, rx) = crossbeam_channel::bounded::<Job>(QUEUE);
        for i in 0..concurrency.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("confab-hash-{i}"))
                .spawn(move || {
                    // Ends when every Hasher clone is gone.
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .map_err(|e| HashError::Hash(e.to_string()))?;
        }
        Ok(Self {
            jobs,
            dummy: dummy.into(),
            argon,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (tx, rx) = oneshot::channel();
        let queued = crate::metrics::timer();
        let job: Job = Box::new(move || {
            crate::metrics::observe(crate::metrics::ARGON2_WAIT, queued);
            let _ = tx.send(f());
        });
        self.jobs.try_send(job).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => HashError::Busy,
            crossbeam_channel::TrySendError::Disconnected(_) => HashError::Closed,
        })?;
        rx.await.map_err(|_| HashError::Closed)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let argon = self.argon.clone();
        self.run(move || hash_blocking(&argon, &password)).await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when `stored` is None
    /// (unknown user): same work either way, and false for the unknown user.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy.to_string());
        let ok = self
            .run(move || verify_blocking(&password, &hash))
            .await??;
        Ok(ok && known)
    }
}

fn hash_blocking(argon: &Argon2<'_>, password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Hash(e.to_string()))?;
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

fn verify_blocking(password: &str, stored: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(stored).map_err(|e| HashError::Hash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A new resume token (what the client keeps) and its hash (what the store keeps).
pub fn new_token() -> (String, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The random part of an invitation code (160 bits, URL-safe base64) and its hash. The code
/// handed out is `ID.SECRET` ([`invite_code`]).
pub fn new_invite_secret() -> (String, Vec<u8>) {
    let mut raw = [0u8; 20];
    rand::rng().fill_bytes(&mut raw);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = token_hash(&secret);
    (secret, hash)
}

pub fn invite_code(id: u64, secret: &str) -> String {
    format!("{id}.{secret}")
}

/// Splits a code into its invitation id and its secret's hash; `None` when it is not shaped
/// like one.
pub fn parse_invite(code: &str) -> Option<(u64, Vec<u8>)> {
    let (id, secret) = code.trim().split_once('.')?;
    let id: u64 = id.parse().ok()?;
    if id == 0 || secret.is_empty() || secret.len() > 128 {
        return None;
    }
    Some((id, token_hash(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_codes_carry_an_id_and_a_secret_of_160_bits() {
        let (secret, hash) = new_invite_secret();
        assert_eq!(secret.len(), 27, "20 bytes in unpadded base64");
        let code = invite_code(7, &secret);
        assert_eq!(parse_invite(&code), Some((7, hash)));
        for bad in ["", "7", "7.", ".abc", "x.abc", "0.abc"] {
            assert_eq!(parse_invite(bad), None, "{bad:?}");
        }
        assert_ne!(new_invite_secret().0, secret);
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = Hasher::new(1).expect("hasher");
        let stored = h.hash("correct horse".into()).await.expect("hash");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            h.verify("correct horse".into(), Some(stored.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !h.verify("wrong horse".into(), Some(stored))
                .await
                .expect("verify")
        );
        assert!(
            !h.verify("correct horse".into(), None)
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn a_minimum_cost_hash_says_so_and_verifies_anywhere() {
        let cheap = Hasher::minimum_cost(1).expect("hasher");
        let stored = cheap.hash("correct horse".into()).await.expect("hash");
        assert!(
            stored.starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
            "{stored}"
        );
        let normal = Hasher::new(1).expect("hasher");
        assert!(
            normal
                .verify("correct horse".into(), Some(stored.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !cheap
                .verify("wrong horse".into(), Some(stored))
                .await
                .expect("verify")
        );
    }

    #[test]
    fn tokens_differ_and_hash_stably() {
        let (a, ha) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), ha);
        assert_eq!(ha.len(), 32);
    }
}
