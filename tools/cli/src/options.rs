//! The options every command shares: the connection, and every store option
//! that changes how documents are read — the flags are made from the
//! library's one table of them (`mongodb_session_store::config`), named
//! after the `StoreBuilder` methods they call (the environment variables
//! are those of the former `mss-migrate`): give the tool the service's
//! values, or it will not find the service's sessions.

use std::{path::PathBuf, str::FromStr, time::Duration};

use anyhow::{bail, Context, Result};
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use mongodb_session_store::{
    config::{parse_key_ring, StoreOption, STORE_OPTIONS},
    express::ExpressLayout,
    KeyRing, MongoSessionStore, StoreBuilder,
};

pub(crate) use mongodb_session_store::config::parse_duration;

/// How the service's store is built: the library's store options as given
/// (in the table's order), the URI, and the key ring's other forms.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreOptions {
    uri: Option<String>,
    given: Vec<(&'static str, String)>,
    encryption_key: Option<String>,
    encryption_key_id: Option<u32>,
    encryption_keys_file: Option<PathBuf>,
}

/// The options that shape the connection rather than the documents.
const CONNECTION: &[&str] = &["database", "operation-timeout", "connect-timeout"];

impl Args for StoreOptions {
    fn augment_args(command: Command) -> Command {
        let uri = Arg::new("uri")
            .long("uri")
            .env("MONGODB_URI")
            .hide_env_values(true)
            .global(true)
            .help("The MongoDB server (and, in its path, the database)");
        let command = STORE_OPTIONS
            .iter()
            .fold(command.arg(uri), |command, option| {
                command.arg(flag(option))
            });
        command
            .arg(
                Arg::new("encryption-key")
                    .long("encryption-key")
                    .env("SESSION_ENCRYPTION_KEY")
                    .hide_env_values(true)
                    .global(true)
                    .help(
                        "One encryption key (`encryption`: base64 of 32 bytes); for a key ring, \
                         --encryption-keys or --encryption-keys-file",
                    ),
            )
            .arg(
                Arg::new("encryption-key-id")
                    .long("encryption-key-id")
                    .value_parser(clap::value_parser!(u32))
                    .global(true)
                    .help("The id of that key in the service's key ring [default: 1]"),
            )
            .arg(
                Arg::new("encryption-keys-file")
                    .long("encryption-keys-file")
                    .env("SESSION_ENCRYPTION_KEYS_FILE")
                    .hide_env_values(true)
                    .value_parser(clap::value_parser!(PathBuf))
                    .global(true)
                    .help(
                        "A file holding the key ring: one `id:base64` per line, the primary \
                         first; blank lines and lines starting with # are skipped",
                    ),
            )
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

/// The flag of one store option.
fn flag(option: &'static StoreOption) -> Arg {
    let mut arg = Arg::new(option.name)
        .long(option.name)
        .global(true)
        .help(option.help);
    arg = match option.value {
        Some(value) => arg.value_name(value),
        None => arg.action(ArgAction::SetTrue),
    };
    if let Some(env) = option.env {
        arg = arg.env(env).hide_env_values(option.secret);
    }
    arg
}

impl FromArgMatches for StoreOptions {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut options = Self::default();
        options.update_from_arg_matches(matches)?;
        Ok(options)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.uri = matches.get_one::<String>("uri").cloned();
        self.given = STORE_OPTIONS
            .iter()
            .filter_map(|option| {
                let value = match option.value {
                    Some(_) => matches.get_one::<String>(option.name)?.clone(),
                    None => matches.get_flag(option.name).then(|| "true".to_string())?,
                };
                Some((option.name, value))
            })
            .collect();
        self.encryption_key = matches.get_one::<String>("encryption-key").cloned();
        self.encryption_key_id = matches.get_one::<u32>("encryption-key-id").copied();
        self.encryption_keys_file = matches.get_one::<PathBuf>("encryption-keys-file").cloned();
        Ok(())
    }
}

/// The store's document layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreLayout {
    Native,
    Express(ExpressLayout),
}

impl FromStr for StoreLayout {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "native" => Ok(Self::Native),
            other => other.parse().map(Self::Express).map_err(|_| {
                format!(
                    "unknown layout {other:?}: native, connect-mongo, connect-mongo-object or \
                     connect-mongodb-session"
                )
            }),
        }
    }
}

/// `--codec`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CodecName {
    Bson,
    JsonString,
}

impl StoreOptions {
    /// The URI, from `--uri` or `MONGODB_URI`.
    pub(crate) fn uri(&self) -> Result<&str> {
        self.uri
            .as_deref()
            .context("no server: give --uri or set MONGODB_URI")
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.given
            .iter()
            .find(|(given, _)| *given == name)
            .map(|(_, value)| value.as_str())
    }

    /// `--layout`: native unless a Node store's is named.
    pub(crate) fn layout(&self) -> Result<StoreLayout> {
        self.value("layout")
            .map_or(Ok(StoreLayout::Native), |name| {
                name.parse().map_err(anyhow::Error::msg)
            })
    }

    /// `--collection` [default: sessions].
    pub(crate) fn collection(&self) -> &str {
        self.value("collection").unwrap_or("sessions")
    }

    /// `--operation-timeout` [default: 10s].
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.value("operation-timeout")
            .and_then(|text| parse_duration(text).ok())
            .unwrap_or(Duration::from_secs(10))
    }

    /// `builder` with the given options named by `pick` set.
    fn apply(&self, builder: StoreBuilder, pick: impl Fn(&str) -> bool) -> Result<StoreBuilder> {
        self.given.iter().filter(|(name, _)| pick(name)).try_fold(
            builder,
            |builder, (name, value)| {
                builder
                    .set(name, value)
                    .with_context(|| format!("--{name}"))
            },
        )
    }

    /// A builder on the server with the connection options only; it writes
    /// nothing at build (no index, no removal task).
    pub(crate) fn connection(&self) -> Result<StoreBuilder> {
        let builder = MongoSessionStore::from_uri(self.uri()?).manage_collection(false);
        self.apply(builder, |name| CONNECTION.contains(&name))
    }

    /// The service's store, as it builds it.
    pub(crate) fn store(&self) -> Result<StoreBuilder> {
        let builder = self.connection()?.collection(self.collection());
        let builder = self.apply(builder, |name| name == "layout")?;
        self.native_options(builder)
    }

    /// The options that shape the native layout (and, for the Node layouts,
    /// override their defaults).
    pub(crate) fn native_options(&self, builder: StoreBuilder) -> Result<StoreBuilder> {
        let shaping =
            |name: &str| !CONNECTION.contains(&name) && !["layout", "collection"].contains(&name);
        let builder = self.apply(builder, shaping)?;
        Ok(match self.other_key_ring()? {
            Some(ring) => builder.encryption(ring),
            None => builder,
        })
    }

    /// The key ring from whichever form was given.
    pub(crate) fn key_ring(&self) -> Result<Option<KeyRing>> {
        if let Some(list) = self.value("encryption-keys") {
            self.other_key_ring()?;
            return parse_key_ring(list.split(','))
                .map(Some)
                .context("--encryption-keys");
        }
        self.other_key_ring()
    }

    /// The key ring from `--encryption-key` or `--encryption-keys-file`,
    /// checking that only one form was given.
    fn other_key_ring(&self) -> Result<Option<KeyRing>> {
        let given = [
            self.encryption_key.is_some(),
            self.value("encryption-keys").is_some(),
            self.encryption_keys_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            bail!(
                "give one of --encryption-key, --encryption-keys and --encryption-keys-file \
                 (or their environment variables)"
            );
        }
        if self.encryption_key_id.is_some() && self.encryption_key.is_none() {
            bail!("--encryption-key-id needs --encryption-key");
        }
        if let Some(key) = &self.encryption_key {
            let id = self.encryption_key_id.unwrap_or(1);
            return Ok(Some(
                KeyRing::from_base64(id, key).context("--encryption-key")?,
            ));
        }
        if let Some(path) = &self.encryption_keys_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let lines = text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'));
            return parse_key_ring(lines)
                .map(Some)
                .with_context(|| format!("the key ring in {}", path.display()));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        store: StoreOptions,
    }

    /// Every store option of the library is a flag here, and reaches the
    /// builder by its name.
    #[test]
    fn every_store_option_of_the_library_is_a_flag() {
        let command = <Cli as clap::CommandFactory>::command();
        for option in STORE_OPTIONS {
            let arg = command.get_arguments().find(|a| a.get_id() == option.name);
            assert!(arg.is_some(), "--{} is missing", option.name);
        }
        let cli = Cli::try_parse_from([
            "x",
            "--uri",
            "mongodb://h/db",
            "--collection",
            "c",
            "--idle-timeout",
            "2h",
            "--no-timestamps",
            "--layout",
            "connect-mongo",
        ])
        .unwrap();
        assert_eq!(cli.store.collection(), "c");
        assert_eq!(
            cli.store.layout().unwrap(),
            StoreLayout::Express(ExpressLayout::ConnectMongo)
        );
        assert!(cli.store.store().is_ok());
        let bad = Cli::try_parse_from(["x", "--uri", "mongodb://h/db", "--idle-timeout", "soon"])
            .unwrap();
        assert!(
            bad.store.store().is_err(),
            "the builder refuses what does not parse"
        );
    }
}
