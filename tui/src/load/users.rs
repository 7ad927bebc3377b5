//! The users a load run logs in as: registered once by `setup` (argon2 is slow on purpose),
//! then resumed by token. The file is rewritten after each run with the newest tokens (a used
//! token expires a minute later).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{LoadError, LoadOpts, connect, report::Progress};
use crate::client::Auth;

/// Password of every load-test user.
pub const PASSWORD: &str = "confab-load-password";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub user_id: u64,
    pub token: String,
    /// Peer name -> private thread id.
    #[serde(default)]
    pub threads: BTreeMap<String, u64>,
    /// Thread ids of the load groups this user is a member of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u64>,
}

impl UserRecord {
    pub fn thread_with(&self, peer: &str) -> Option<u64> {
        self.threads.get(peer).copied()
    }
}

#[derive(Debug, Default, Clone)]
pub struct Users {
    path: Option<PathBuf>,
    list: Vec<UserRecord>,
}

impl Users {
    /// Reads a users file (JSON lines).
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::Users(format!("{}: {e}", path.display())))?;
        let list = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| LoadError::Users(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            list,
        })
    }

    /// Writes the file back (when loaded from or set up into one).
    pub fn save(&self) -> Result<(), LoadError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut out = String::new();
        for u in &self.list {
            out.push_str(&serde_json::to_string(u).map_err(|e| LoadError::Users(e.to_string()))?);
            out.push('\n');
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, out).map_err(|e| LoadError::Users(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| LoadError::Users(e.to_string()))
    }

    pub fn all(&self) -> &[UserRecord] {
        &self.list
    }

    /// Users 2i and 2i+1 are friends (when set up with pairs).
    pub fn pairs(&self) -> Vec<(UserRecord, UserRecord)> {
        self.list
            .chunks(2)
            .filter(|c| c.len() == 2 && c[0].thread_with(&c[1].name).is_some())
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect()
    }

    /// The load groups: (thread id, members), in the order they were made.
    pub fn groups(&self) -> Vec<(u64, Vec<UserRecord>)> {
        let mut out: Vec<(u64, Vec<UserRecord>)> = Vec::new();
        let mut at: BTreeMap<u64, usize> = BTreeMap::new();
        for u in &self.list {
            for g in &u.groups {
                let i = *at.entry(*g).or_insert_with(|| {
                    out.push((*g, Vec::new()));
                    out.len() - 1
                });
                out[i].1.push(u.clone());
            }
        }
        out
    }

    pub fn update_token(&mut self, name: &str, token: String) {
        if let Some(i) = self.index(name) {
            self.list[i].token = token;
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        // Setup names users `{prefix}{i}` in order, so the position is usually the number.
        let guess = name
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse::<usize>()
            .ok()
            .filter(|i| self.list.get(*i).is_some_and(|u| u.name == name));
        guess.or_else(|| self.list.iter().position(|u| u.name == name))
    }

    /// Users taken out of a file for one part of a run (not saved by themselves).
    pub fn subset(list: Vec<UserRecord>) -> Self {
        Self { path: None, list }
    }

    /// Takes over the tokens of `other`'s users (rotated during its part of a run).
    pub fn absorb(&mut self, other: &Users) {
        for u in &other.list {
            self.update_token(&u.name, u.token.clone());
        }
    }

    /// Name -> token of every user whose token differs from `before`'s.
    pub fn changed_tokens(&self, before: &Users) -> BTreeMap<String, String> {
        self.list
            .iter()
            .zip(&before.list)
            .filter(|(a, b)| a.token != b.token)
            .map(|(a, _)| (a.name.clone(), a.token.clone()))
            .collect()
    }

    /// Registers `n` users named `{prefix}{i}` (in parallel, `concurrency` at a time); with
    /// `pairs`, makes users 2i and 2i+1 friends; with `group_size` M > 1, puts each run of M
    /// consecutive users in an open group (the first creates it, the others join).
    pub async fn setup(
        opts: &LoadOpts,
        path: Option<PathBuf>,
        prefix: &str,
        n: usize,
        pairs: bool,
        group_size: usize,
        concurrency: usize,
    ) -> Result<Self, LoadError> {
        let sem = Arc::new(Semaphore::new(concurrency.max(1)));
        let progress = Progress::new(opts.progress, n as u64);
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let sem = sem.clone();
            let cfg = opts.client_config(i);
            let name = format!("{prefix}{i}");
            let progress = progress.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = sem
                    .acquire_owned()
                    .await
                    .map_err(|e| LoadError::Setup(e.to_string()))?;
                let auth = Auth::Register {
                    name: name.clone(),
                    password: PASSWORD.into(),
                    invite: String::new(),
                };
                let (client, _events, user, token) = connect(cfg, auth, &name).await?;
                progress.inc();
                Ok::<_, LoadError>((
                    client,
                    UserRecord {
                        name,
                        user_id: user.user_id,
                        token,
                        threads: BTreeMap::new(),
                        groups: Vec::new(),
                    },
                ))
            }));
        }
        let mut clients = Vec::with_capacity(n);
        let mut list = Vec::with_capacity(n);
        for t in tasks {
            let (c, u) = t.await.map_err(|e| LoadError::Setup(e.to_string()))??;
            clients.push(c);
            list.push(u);
        }
        progress.finish();
        if pairs {
            for i in (0..n.saturating_sub(1)).step_by(2) {
                let req = clients[i]
                    .friend_request(list[i + 1].user_id, "")
                    .await
                    .map_err(|e| LoadError::Setup(format!("friend request: {e}")))?;
                let ok = clients[i + 1]
                    .respond(req.request_id, true)
                    .await
                    .map_err(|e| LoadError::Setup(format!("accept: {e}")))?;
                let (a, b) = (list[i].name.clone(), list[i + 1].name.clone());
                list[i].threads.insert(b, ok.thread_id);
                list[i + 1].threads.insert(a, ok.thread_id);
            }
        }
        if group_size > 1 {
            for (g, start) in (0..n / group_size * group_size)
                .step_by(group_size)
                .enumerate()
            {
                let group = clients[start]
                    .create_group(&format!("{prefix}-group-{g}"))
                    .await
                    .map_err(|e| LoadError::Setup(format!("create group: {e}")))?;
                for member in &clients[start + 1..start + group_size] {
                    member
                        .join_group(group.group_id)
                        .await
                        .map_err(|e| LoadError::Setup(format!("join group: {e}")))?;
                }
                for u in &mut list[start..start + group_size] {
                    u.groups.push(group.thread_id);
                }
            }
        }
        // The clients resumed and rotated nothing since registering: their tokens are current.
        for c in clients {
            c.shutdown().await;
        }
        let users = Self { path, list };
        users.save()?;
        Ok(users)
    }
}
