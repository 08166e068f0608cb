//! `sagak users` (the web front's accounts) and `sagak audit` (who saw a
//! household, what a person saw).

use super::Context;
use crate::cli::UsersAction;

/// Adds, lists or revokes an account in `web.users_file`, or with
/// `storage.url` in the store every instance reads.
pub fn users(cx: &Context, action: UsersAction) -> anyhow::Result<()> {
    let path = &cx.settings.web.users_file;
    let accounts = match cx.settings.storage()?.accounts {
        Some(store) => sagak::web::users::Accounts::Store(store),
        None => sagak::web::users::Accounts::File(path.clone()),
    };
    let place = match &accounts {
        sagak::web::users::Accounts::Store(s) => s.location("users.json"),
        sagak::web::users::Accounts::File(p) => p.display().to_string(),
    };
    match action {
        UsersAction::Add { name, role, dong } => {
            let (user, token) = sagak::web::users::add(accounts, &name, role, dong.as_deref())?;
            println!(
                "account {} ({}, {}{}) added to {}",
                user.id,
                user.name,
                user.role.as_str(),
                user.dong
                    .as_deref()
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default(),
                place
            );
            println!("token (shown this once; give it to the person, who logs in with it on the web front):\n{token}");
        }
        UsersAction::List => {
            let users = sagak::web::users::load(accounts)?;
            println!(
                "{:<11} {:<5} {:<11} {:<21} {:<21} name",
                "id", "role", "dong", "created", "revoked"
            );
            for u in users {
                println!(
                    "{:<11} {:<5} {:<11} {:<21} {:<21} {}",
                    u.id,
                    u.role.as_str(),
                    u.dong.as_deref().unwrap_or("-"),
                    u.created_at,
                    u.revoked_at.as_deref().unwrap_or("-"),
                    u.name
                );
            }
        }
        UsersAction::Revoke { id } => {
            let u = sagak::web::users::revoke(accounts, &id)?;
            println!(
                "account {} ({}) revoked; a running server ends its sessions within seconds",
                u.id, u.name
            );
        }
    }
    Ok(())
}

/// Prints the audit entries of a household or a person.
pub fn audit(
    cx: &Context,
    household: Option<String>,
    user: Option<String>,
    since: Option<chrono::NaiveDate>,
    json: bool,
) -> anyhow::Result<()> {
    if household.is_none() && user.is_none() {
        anyhow::bail!("say whose record you want: --household ID (who saw it) or --user ID [--since YYYY-MM-DD] (what they saw)");
    }
    let dir = &cx.settings.web.audit_dir;
    let query = sagak::web::audit::AuditQuery {
        household,
        user,
        since,
    };
    // with storage.url every instance's audit is in the store
    let (entries, place) = match cx.settings.storage()?.audit {
        Some(store) => (
            sagak::web::audit::search_store(&store, &query)?,
            store.location(""),
        ),
        None => (
            sagak::web::audit::search(dir, &query)?,
            dir.display().to_string(),
        ),
    };
    for e in &entries {
        if json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            let what = e
                .file
                .clone()
                .unwrap_or_else(|| e.households.len().to_string() + " households");
            println!(
                "{}  {:<11} {:<4} {:<15} {:<22} {:<4} {}  {}{}",
                e.time,
                e.user,
                e.role,
                e.client,
                e.action,
                e.status,
                e.path,
                what,
                e.instance
                    .as_deref()
                    .map(|i| format!("  ({i})"))
                    .unwrap_or_default()
            );
        }
    }
    if !json {
        println!("{} entries in {place}", entries.len());
    }
    Ok(())
}
