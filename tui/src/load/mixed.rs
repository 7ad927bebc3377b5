//! A realistic mix in one run: an idle majority, some dm pairs, some groups, and a trickle of
//! logins, each part on its own users, all at once; one combined report.

use std::collections::BTreeSet;

use super::report::Report;
use super::{LoadError, LoadOpts, LoginKinds, Pace, Users, dm, group, idle, login};

/// How many of each.
#[derive(Debug, Clone)]
pub struct MixedPlan {
    pub groups: usize,
    pub group_senders: usize,
    pub pairs: usize,
    pub login_workers: usize,
    /// Logins per second per login worker.
    pub login_rate: f64,
    pub idle: usize,
    pub size: usize,
}

impl MixedPlan {
    /// The default mix for `clients` connections: a tenth in groups of `group_size`, a tenth
    /// in dm pairs, one login worker per 200 clients, the rest idle.
    pub fn for_clients(clients: usize, group_size: usize) -> Self {
        let in_groups = clients / 10;
        let pairs = clients / 20;
        Self {
            groups: in_groups / group_size.max(2),
            group_senders: 2,
            pairs,
            login_workers: (clients / 200).max(1),
            login_rate: 5.0,
            idle: clients.saturating_sub(in_groups + 2 * pairs),
            size: 64,
        }
    }
}

/// Runs the parts concurrently on disjoint users and merges their reports.
pub async fn mixed(
    opts: &LoadOpts,
    users: &mut Users,
    plan: &MixedPlan,
) -> Result<Report, LoadError> {
    let mut used = BTreeSet::new();
    let groups: Vec<_> = users.groups().into_iter().take(plan.groups).collect();
    if groups.len() < plan.groups {
        return Err(LoadError::Setup(format!(
            "the users file has {} groups, the mix wants {}: run setup with --group-size",
            groups.len(),
            plan.groups
        )));
    }
    let mut group_users = Vec::new();
    for (_, members) in &groups {
        for m in members {
            if used.insert(m.name.clone()) {
                group_users.push(m.clone());
            }
        }
    }
    let mut pair_users = Vec::new();
    for (a, b) in users.pairs() {
        if pair_users.len() >= 2 * plan.pairs {
            break;
        }
        if !used.contains(&a.name) && !used.contains(&b.name) {
            used.insert(a.name.clone());
            used.insert(b.name.clone());
            pair_users.push(a);
            pair_users.push(b);
        }
    }
    if pair_users.len() < 2 * plan.pairs {
        return Err(LoadError::Setup(
            "not enough free pairs for the mix: run setup with --pairs and more users".into(),
        ));
    }
    let rest: Vec<_> = users
        .all()
        .iter()
        .filter(|u| !used.contains(&u.name))
        .cloned()
        .collect();
    let login_n = (plan.login_workers * 4).min(rest.len() / 2);
    if plan.login_workers > 0 && login_n == 0 || rest.len() <= login_n {
        return Err(LoadError::Setup(
            "not enough users left for the logins and idle parts of the mix".into(),
        ));
    }
    let mut g_users = Users::subset(group_users);
    let mut p_users = Users::subset(pair_users);
    let mut l_users = Users::subset(rest[..login_n].to_vec());
    let mut i_users = Users::subset(rest[login_n..].to_vec());
    let mut l_opts = opts.clone();
    l_opts.rate = plan.login_rate;
    let (rg, rp, rl, ri) = tokio::join!(
        async {
            if plan.groups == 0 {
                return Ok(Report::new("group"));
            }
            group(
                opts,
                &mut g_users,
                plan.groups,
                plan.group_senders,
                plan.size,
            )
            .await
        },
        async {
            if plan.pairs == 0 {
                return Ok(Report::new("dm"));
            }
            dm(opts, &mut p_users, plan.pairs, plan.size, Pace::Delivery).await
        },
        async {
            if plan.login_workers == 0 {
                return Ok(Report::new("login"));
            }
            let kinds = LoginKinds {
                token: true,
                password: false,
            };
            login(&l_opts, &mut l_users, plan.login_workers, kinds).await
        },
        idle(opts, &mut i_users, plan.idle, None),
    );
    for part in [&g_users, &p_users, &l_users, &i_users] {
        users.absorb(part);
    }
    let mut report = Report::new("mixed");
    for r in [rg?, rp?, rl?, ri?] {
        report.merge(&r);
    }
    report.scenario = "mixed".into();
    report.elapsed = opts.duration;
    report.check();
    Ok(report)
}
