//! Ending sessions: `revoke` and `purge-expired`.

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};
use mongodb_session_store::{
    admin::Incomplete,
    express::{decode_cookie_value, unsign},
};
use serde_json::json;

use super::{namespace, open, BatchArgs};
use crate::{
    options::StoreOptions,
    run::{Report, Ui},
};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("whose").required(true).args(["user", "session_cookie"])))]
#[command(group(ArgGroup::new("which").args(["handle", "all"])))]
pub(crate) struct RevokeArgs {
    /// The user whose sessions to end (with --handle or --all).
    #[arg(long, requires = "which")]
    user: Option<String>,
    /// The session to end, by the handle `list` shows.
    #[arg(long, requires = "user", conflicts_with = "all")]
    handle: Option<String>,
    /// End every live session of the user.
    #[arg(long, requires = "user")]
    all: bool,
    /// End the session this cookie carries: the cookie's value as the
    /// browser sends it (URL-encoded or not). A tower-sessions cookie is the
    /// id itself; for actix-session give the session key (with `Signed`
    /// cookies, the value after its 44-character signature); an
    /// express-session cookie (`s:<id>.<signature>`) needs --cookie-secret.
    /// The id is hashed as the store does (--id-hash-key), never printed.
    #[arg(long, conflicts_with = "user")]
    session_cookie: Option<String>,
    /// express-session's secret(s), comma-separated, to verify a signed
    /// cookie (any one of them may have signed it).
    #[arg(long, env = "SESSION_SECRET", hide_env_values = true)]
    cookie_secret: Option<String>,
}

pub(super) async fn revoke(options: &StoreOptions, args: &RevokeArgs, ui: Ui) -> Result<Report> {
    if let Some(cookie) = &args.session_cookie {
        let id = session_id(cookie, args.cookie_secret.as_deref())?;
        let store = open(options).await?;
        ui.confirm(&format!(
            "end the session this cookie carries in {}",
            namespace(&store)
        ))?;
        let revoked = store.delete(&id).await;
        store.close().await;
        let revoked = u64::from(revoked?);
        let text = match revoked {
            0 => "no session has that cookie (already ended, or another store configuration)",
            _ => "revoked the session of that cookie",
        };
        return Ok(Report::new(json!({ "revoked": revoked }), text.into()));
    }
    let user = args.user.as_deref().context("--user or --session-cookie")?;
    let store = open(options).await?;
    let revoked = match (&args.handle, args.all) {
        (Some(handle), _) => {
            ui.confirm(&format!(
                "end session {handle} of user {user:?} in {}",
                namespace(&store)
            ))?;
            store.revoke(user, handle).await.map(u64::from)
        }
        (None, true) => {
            ui.confirm(&format!(
                "end every session of user {user:?} in {}",
                namespace(&store)
            ))?;
            // No handle is empty, so keeping "" keeps none.
            store.revoke_others(user, "").await
        }
        (None, false) => bail!("say which: --handle <handle> or --all"),
    };
    store.close().await;
    let revoked = revoked?;
    let text = format!("revoked {revoked} sessions of {user:?}");
    Ok(Report::new(
        json!({ "user": user, "revoked": revoked }),
        text,
    ))
}

/// The session id in a cookie value.
fn session_id(cookie: &str, secrets: Option<&str>) -> Result<String> {
    let value = decode_cookie_value(cookie.trim());
    if !value.starts_with("s:") {
        return Ok(value);
    }
    let secrets: Vec<&str> = secrets
        .context("an express-session signed cookie (s:…): give --cookie-secret")?
        .split(',')
        .collect();
    unsign(&value, &secrets).context("the cookie's signature does not verify with --cookie-secret")
}

pub(super) async fn purge_expired(
    options: &StoreOptions,
    args: &BatchArgs,
    ui: Ui,
) -> Result<Report> {
    let store = open(options).await?;
    ui.confirm(&format!(
        "delete every expired session in {}",
        namespace(&store)
    ))?;
    let bar = ui.counter("deleted");
    let deleted = store
        .delete_expired_with(args.options(), |n| bar.set_position(n))
        .await;
    bar.finish_and_clear();
    store.close().await;
    let text = |n: u64| format!("deleted {n} expired sessions");
    match deleted {
        Ok(n) => Ok(Report::new(json!({ "deleted": n }), text(n))),
        // Nothing was done: a plain failure.
        Err(stopped) if stopped.done == 0 => Err(stopped.error.into()),
        Err(Incomplete { done, error, .. }) => Ok(Report::stopped(
            json!({ "deleted": done }),
            &text(done),
            &error,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb_session_store::express::{encode_cookie_value, sign};

    #[test]
    fn cookies_give_their_session_id() {
        assert_eq!(session_id(" abc ", None).unwrap(), "abc");
        let signed = encode_cookie_value(&sign("the-id", "s2"));
        assert_eq!(session_id(&signed, Some("s1,s2")).unwrap(), "the-id");
        assert!(session_id(&signed, None).is_err(), "no secret");
        assert!(session_id(&signed, Some("other")).is_err(), "wrong secret");
    }
}
