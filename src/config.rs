//! Settings from the command line, the environment and the TOML config file, in that order of
//! precedence (cli.md "Flags"), resolved once into [`Settings`] so no other module looks at where
//! a value came from.
//!
//! The config file never holds a password: it names a `password_file` or `password_command`,
//! as msmtp's `passwordeval` does, so the secret is not one more plaintext copy on disk.
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use crate::cli::{AuthArg, Cli, TlsMode, MAX_TIMEOUT_SECS};
use crate::provider::{self, Provider};

/// Errors of this layer: all are configuration problems (exit 78) except where noted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("cannot read config file {path}: {source}; fix the path given to --config")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid --server {0:?}: expected HOST or HOST:PORT (IPv6 as [::1]:587)")]
    Server(String),
    #[error("invalid --tls-fingerprint: {0}; give the 64 hex digits of the SHA-256 (colons allowed), as --probe prints it")]
    Fingerprint(String),
    #[error(
        "no password for {user}: {why}; set SMTP_PASSWORD, --password-file or --password-command"
    )]
    NoPassword { user: String, why: String },
    #[error("--password-file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--password-command failed: {0}")]
    PasswordCommand(String),
    #[error("{0}")]
    Invalid(String),
}

/// The config file, `deny_unknown_fields` so a misspelt key is an error and not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub provider: Option<String>,
    pub server: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    pub ca_file: Option<PathBuf>,
    pub tls_fingerprint: Option<String>,
    pub insecure: Option<bool>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub auth: Option<AuthArg>,
    pub ehlo: Option<String>,
    pub timeout: Option<u64>,
    pub retries: Option<u32>,
    pub from: Option<String>,
    pub dkim_key: Option<PathBuf>,
    pub dkim_selector: Option<String>,
    pub dkim_domain: Option<String>,
    pub outbox: Option<PathBuf>,
    /// `default_account = "NAME"`: the account used when neither `--account` nor the From
    /// address picks one. Spanned, so a name that is not defined is reported with its line.
    pub default_account: Option<toml::Spanned<String>>,
    /// `[accounts.NAME]` tables, each with the same keys as the top level (cli.md "Accounts").
    #[serde(default)]
    pub accounts: BTreeMap<String, toml::Spanned<FileConfig>>,
    /// Where the file came from and its text, for errors that name a line.
    #[serde(skip)]
    origin: Option<(PathBuf, String)>,
    /// sendmail mode: the aliases file (`name: addr, addr`, `default: addr`).
    pub aliases: Option<PathBuf>,
    /// sendmail mode: the domain that completes a local name such as `root`.
    pub maildomain: Option<String>,
}

impl FileConfig {
    /// Parses a config file; errors carry the line and column.
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        if let Ok(table) = text.parse::<toml::Table>() {
            let accounts = table.get("accounts").and_then(toml::Value::as_table);
            let in_account = accounts.into_iter().flatten().find_map(|(name, t)| {
                t.as_table()
                    .is_some_and(|t| t.contains_key("password"))
                    .then_some(name)
            });
            if table.contains_key("password") || in_account.is_some() {
                let place = in_account.map_or(String::new(), |n| format!("[accounts.{n}]: "));
                return Err(ConfigError::File {
                    path: path.to_owned(),
                    message: format!(
                        "{place}a password is not kept in the config file; use password_command \
                         (e.g. \"pass show smtp\") or password_file"
                    ),
                });
            }
        }
        let mut cfg: FileConfig = toml::from_str(text).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            message: toml_error_message(text, &e),
        })?;
        // Relative paths in the file are relative to the file, as users expect from ~/.config.
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.relative_to(base);
        for account in cfg.accounts.values_mut() {
            account.get_mut().relative_to(base);
        }
        cfg.origin = Some((path.to_owned(), text.to_owned()));
        cfg.check_accounts()?;
        Ok(cfg)
    }

    fn relative_to(&mut self, base: &Path) {
        for p in [
            &mut self.ca_file,
            &mut self.password_file,
            &mut self.dkim_key,
            &mut self.outbox,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// A `ConfigError::File` for this file, at the line of byte `offset` when given.
    fn error_at(&self, offset: Option<usize>, message: String) -> ConfigError {
        let (path, text) = match &self.origin {
            Some((path, text)) => (path.clone(), text.as_str()),
            None => (PathBuf::from("(no config file)"), ""),
        };
        let message = match offset {
            Some(at) => format!("line {}: {message}", line_col(text, at).0),
            None => message,
        };
        ConfigError::File { path, message }
    }

    /// The accounts defined, in file order, with their lines: what an error offers instead.
    fn account_list(&self) -> String {
        let text = self.origin.as_ref().map_or("", |(_, t)| t.as_str());
        let mut names: Vec<(&String, usize)> = self
            .accounts
            .iter()
            .map(|(name, a)| (name, a.span().start))
            .collect();
        names.sort_by_key(|(_, at)| *at);
        if names.is_empty() {
            return "the file defines no [accounts.NAME]".into();
        }
        let list: Vec<String> = names
            .iter()
            .map(|(name, at)| format!("{name} (line {})", line_col(text, *at).0))
            .collect();
        format!("the file defines {}", list.join(", "))
    }

    /// Accounts do not nest, and `default_account` must name one of them.
    fn check_accounts(&self) -> Result<(), ConfigError> {
        for account in self.accounts.values() {
            let inner = account.get_ref();
            if let Some(d) = &inner.default_account {
                return Err(self.error_at(
                    Some(d.span().start),
                    "default_account belongs at the top of the file, not inside an account".into(),
                ));
            }
            if let Some(nested) = inner.accounts.values().next() {
                return Err(self.error_at(
                    Some(nested.span().start),
                    "accounts do not nest: define each as [accounts.NAME] at the top level".into(),
                ));
            }
        }
        if let Some(name) = &self.default_account {
            if !self.accounts.contains_key(name.get_ref()) {
                return Err(self.error_at(
                    Some(name.span().start),
                    format!(
                        "default_account = {:?} names no [accounts.{0}]; {}: fix the name",
                        name.get_ref(),
                        self.account_list()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Picks the account (cli.md "Accounts"): `--account`/SMTP_ACCOUNT when given, else the
    /// one whose `from` matches the From address (an exact address before a `*@domain`
    /// pattern, the first in the file among equals), else `default_account`, else none. Its
    /// keys are laid over the top level's; flags and the environment still win over both.
    pub fn with_account(
        mut self,
        explicit: Option<&str>,
        from: Option<&str>,
    ) -> Result<FileConfig, ConfigError> {
        let name = match (explicit, from) {
            (Some(name), _) => {
                if !self.accounts.contains_key(name) {
                    return Err(self.error_at(
                        None,
                        format!(
                            "--account (or SMTP_ACCOUNT) {name:?} is not an [accounts.NAME] here; \
                             {}: fix the name",
                            self.account_list()
                        ),
                    ));
                }
                Some(name.to_owned())
            }
            (None, from) => from
                .and_then(|from| self.account_for(from))
                .or_else(|| self.default_account.as_ref().map(|d| d.get_ref().clone())),
        };
        let Some(account) = name.and_then(|n| self.accounts.remove(&n)) else {
            return Ok(self);
        };
        Ok(self.overlay(account.into_inner()))
    }

    /// The first account in the file whose `from` is this address, else the first whose
    /// `*@domain` pattern covers it.
    fn account_for(&self, from: &str) -> Option<String> {
        let mut accounts: Vec<(&String, &toml::Spanned<FileConfig>)> =
            self.accounts.iter().collect();
        accounts.sort_by_key(|(_, a)| a.span().start);
        let find = |pattern: bool| {
            accounts.iter().find_map(|(name, a)| {
                let theirs = a.get_ref().from.as_deref()?;
                let hit = if pattern {
                    domain_pattern(theirs).is_some_and(|d| {
                        split_address(from).is_some_and(|(_, fd)| fd.eq_ignore_ascii_case(d))
                    })
                } else {
                    same_address(theirs, from)
                };
                hit.then(|| (*name).clone())
            })
        };
        find(false).or_else(|| find(true))
    }

    /// The account's keys over the top level's. Every key is listed, so a key added to the
    /// file format must decide here how an account treats it.
    fn overlay(self, account: FileConfig) -> FileConfig {
        let FileConfig {
            server,
            port,
            tls,
            ca_file,
            tls_fingerprint,
            insecure,
            user,
            password_file,
            password_command,
            auth,
            ehlo,
            timeout,
            retries,
            from,
            dkim_key,
            dkim_selector,
            dkim_domain,
            outbox,
            aliases,
            maildomain,
            provider,
            default_account: _,
            accounts: _,
            origin: _,
        } = account;
        // A `*@domain` pattern says which From addresses the account serves; it is no From.
        let from = from.filter(|f| domain_pattern(f).is_none());
        FileConfig {
            server: server.or(self.server),
            port: port.or(self.port),
            tls: tls.or(self.tls),
            ca_file: ca_file.or(self.ca_file),
            tls_fingerprint: tls_fingerprint.or(self.tls_fingerprint),
            insecure: insecure.or(self.insecure),
            user: user.or(self.user),
            password_file: password_file.or(self.password_file),
            password_command: password_command.or(self.password_command),
            auth: auth.or(self.auth),
            ehlo: ehlo.or(self.ehlo),
            timeout: timeout.or(self.timeout),
            retries: retries.or(self.retries),
            from: from.or(self.from),
            dkim_key: dkim_key.or(self.dkim_key),
            dkim_selector: dkim_selector.or(self.dkim_selector),
            dkim_domain: dkim_domain.or(self.dkim_domain),
            outbox: outbox.or(self.outbox),
            aliases: aliases.or(self.aliases),
            maildomain: maildomain.or(self.maildomain),
            provider: provider.or(self.provider),
            default_account: self.default_account,
            accounts: BTreeMap::new(),
            origin: self.origin,
        }
    }

    /// Loads `--config FILE`, or the default file when it exists.
    pub fn load(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => match default_path() {
                Some(p) if p.is_file() => p,
                _ => return Ok(FileConfig::default()),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Unreadable {
            path: path.clone(),
            source,
        })?;
        FileConfig::parse(&path, &text)
    }
}

/// The addr-spec of `Name <addr>` or of a bare address, split at its last `@`. Display names
/// are allowed in `from`, so the comparison looks only inside the angle brackets.
fn split_address(s: &str) -> Option<(&str, &str)> {
    let s = s.trim();
    let addr = match (s.rfind('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    addr.trim().rsplit_once('@')
}

/// The same mailbox: the local part exactly, the domain without regard to case (RFC 5321
/// §2.4: only the local part may be case-sensitive).
fn same_address(a: &str, b: &str) -> bool {
    match (split_address(a), split_address(b)) {
        (Some((al, ad)), Some((bl, bd))) => al == bl && ad.eq_ignore_ascii_case(bd),
        _ => false,
    }
}

/// The domain of a `*@domain` pattern.
fn domain_pattern(s: &str) -> Option<&str> {
    s.trim().strip_prefix("*@").filter(|d| !d.is_empty())
}

/// `$XDG_CONFIG_HOME/quizmail/config.toml`, else `~/.config/quizmail/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("quizmail").join("config.toml"))
}

/// "line L, column C: message" from a toml error.
pub fn toml_error_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_owned();
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Where the password will come from; read once per run, before connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    Env,
    File(PathBuf),
    Command(String),
    Prompt,
}

#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the leaf certificate's DER.
    pub fingerprint: Option<[u8; 32]>,
    pub insecure: bool,
    pub user: Option<String>,
    pub password: PasswordSource,
    pub auth: AuthArg,
    pub ehlo: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
    /// `--provider`: its server, port and TLS mode were the defaults of these settings.
    pub provider: Option<&'static Provider>,
}

impl ServerSettings {
    /// `host:port` as the report shows it, IPv6 in brackets.
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Everything that depends on flags/environment/config, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub server: Option<ServerSettings>,
    pub from: Option<String>,
    pub dkim_key: Option<PathBuf>,
    pub dkim_selector: Option<String>,
    pub dkim_domain: Option<String>,
    pub outbox: PathBuf,
}

/// Source rank: a flag beats the environment beats the config file.
fn rank(m: &ArgMatches, id: &str) -> u8 {
    match m.value_source(id) {
        Some(ValueSource::CommandLine) => 3,
        Some(ValueSource::EnvVariable) => 2,
        _ => 0,
    }
}

impl Settings {
    /// Merges the parsed command line (with its matches, to know which values came from the
    /// environment) with the config file.
    pub fn resolve(cli: &Cli, m: &ArgMatches, file: FileConfig) -> Result<Settings, ConfigError> {
        let file = file.with_account(cli.account.as_deref(), cli.from.as_deref())?;
        // clap checked the flag's and SMTP_PROVIDER's value; the file's is checked here.
        let preset = match cli.provider.as_deref().or(file.provider.as_deref()) {
            None => None,
            Some(name) => Some(provider::find(name).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "unknown provider {name:?}: expected one of {}",
                    provider::names()
                ))
            })?),
        };
        // A preset's server is a default: below the config file's key (cli.md "a preset ...
        // each overridden by its own flag").
        let server = match (&cli.server, &file.server, preset) {
            (Some(s), _, _) => Some((s.clone(), rank(m, "server"))),
            (None, Some(s), _) => Some((s.clone(), 1)),
            (None, None, Some(p)) => Some((p.host.to_owned(), 0)),
            (None, None, None) => None,
        };
        let server = match server {
            None => None,
            Some((spec, server_rank)) => {
                let (host, embedded_port) = parse_server(&spec)?;
                if file.port == Some(0) {
                    return Err(ConfigError::Invalid(
                        "port = 0 in the config file: give 1 to 65535".into(),
                    ));
                }
                let tls_choice = cli.tls.or(file.tls);
                let port_flag = cli
                    .port
                    .map(|p| (p, rank(m, "port")))
                    .or(file.port.map(|p| (p, 1)));
                let port = match (embedded_port, port_flag) {
                    (Some(e), Some((p, r))) => {
                        if r >= server_rank {
                            p
                        } else {
                            e
                        }
                    }
                    (Some(e), None) => e,
                    (None, Some((p, _))) => p,
                    // The preset's port goes with its TLS mode: `--provider gmail --tls
                    // implicit` means port 465, not 587.
                    (None, None)
                        if preset.is_some_and(|p| tls_choice.is_none_or(|t| t == p.tls)) =>
                    {
                        preset.map_or(587, |p| p.port)
                    }
                    (None, None) => {
                        if tls_choice == Some(TlsMode::Implicit) {
                            465
                        } else {
                            587
                        }
                    }
                };
                let tls = tls_choice.unwrap_or(match preset {
                    Some(p) if p.port == port => p.tls,
                    _ if port == 465 => TlsMode::Implicit,
                    _ => TlsMode::Starttls,
                });
                // --insecure, --tls-fingerprint and --ca-file are one choice (how the
                // certificate is checked, the first of them that is set wins): one made on the
                // command line or in SMTP_CA_FILE replaces the file's whole choice, or the
                // file's `insecure = true` would silently override a --tls-fingerprint flag.
                let (insecure, fingerprint, ca_file) =
                    if cli.insecure || cli.tls_fingerprint.is_some() || cli.ca_file.is_some() {
                        (
                            cli.insecure,
                            cli.tls_fingerprint.as_deref(),
                            cli.ca_file.clone(),
                        )
                    } else {
                        (
                            file.insecure.unwrap_or(false),
                            file.tls_fingerprint.as_deref(),
                            file.ca_file.clone(),
                        )
                    };
                let fingerprint = fingerprint.map(parse_fingerprint).transpose()?;
                let password = if let Some(p) = &cli.password_file {
                    PasswordSource::File(p.clone())
                } else if let Some(c) = &cli.password_command {
                    PasswordSource::Command(c.clone())
                } else if std::env::var_os("SMTP_PASSWORD").is_some() {
                    PasswordSource::Env
                } else if let Some(p) = &file.password_file {
                    PasswordSource::File(p.clone())
                } else if let Some(c) = &file.password_command {
                    PasswordSource::Command(c.clone())
                } else {
                    PasswordSource::Prompt
                };
                // The flag's range is clap's (exit 64); a value from the file is checked here.
                let timeout = cli.timeout.or(file.timeout).unwrap_or(60);
                if !(1..=MAX_TIMEOUT_SECS).contains(&timeout) {
                    return Err(ConfigError::Invalid(format!(
                        "timeout = {timeout} in the config file: give 1 to {MAX_TIMEOUT_SECS} seconds"
                    )));
                }
                Some(ServerSettings {
                    host,
                    port,
                    tls,
                    ca_file,
                    fingerprint,
                    insecure,
                    user: cli.user.clone().or(file.user.clone()),
                    password,
                    auth: cli.auth.or(file.auth).unwrap_or(AuthArg::Auto),
                    ehlo: cli.ehlo.clone().or(file.ehlo.clone()),
                    timeout: Duration::from_secs(timeout),
                    retries: cli.retries.or(file.retries).unwrap_or(2),
                    provider: preset,
                })
            }
        };
        Ok(Settings {
            server,
            from: cli.from.clone().or(file.from),
            dkim_key: cli.dkim_key.clone().or(file.dkim_key),
            dkim_selector: cli.dkim_selector.clone().or(file.dkim_selector),
            dkim_domain: cli.dkim_domain.clone().or(file.dkim_domain),
            outbox: cli
                .outbox
                .clone()
                .or(file.outbox)
                .unwrap_or_else(|| PathBuf::from("outbox")),
        })
    }
}

/// `HOST`, `HOST:PORT`, `[v6]`, `[v6]:PORT`, or a bare IPv6 address.
pub fn parse_server(spec: &str) -> Result<(String, Option<u16>), ConfigError> {
    let bad = || ConfigError::Server(spec.to_owned());
    let spec = spec.trim();
    if spec.is_empty() || spec.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad);
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        return match after {
            "" => Ok((host.to_owned(), None)),
            p => Ok((
                host.to_owned(),
                Some(port(p.strip_prefix(':').ok_or_else(bad)?)?),
            )),
        };
    }
    if spec.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((spec.to_owned(), None));
    }
    match spec.split_once(':') {
        Some((h, p)) if !h.is_empty() => Ok((h.to_owned(), Some(port(p)?))),
        Some(_) => Err(bad()),
        None => Ok((spec.to_owned(), None)),
    }
}

/// `--tls-fingerprint`: the transport layer's parser, with the flag's own error.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], ConfigError> {
    crate::transport::parse_fingerprint(s).map_err(|e| ConfigError::Fingerprint(e.to_string()))
}

/// Reads the password from its source. Called once, before the first connection, when `--user`
/// is set: a prompt then never races the server's timeout, a retry never asks again, and a
/// password that cannot be had stops the run before anything is sent.
pub fn read_password(source: &PasswordSource, user: &str) -> Result<String, ConfigError> {
    let pw = match source {
        PasswordSource::Env => {
            std::env::var("SMTP_PASSWORD").map_err(|_| ConfigError::NoPassword {
                user: user.into(),
                why: "SMTP_PASSWORD is not valid UTF-8".into(),
            })?
        }
        PasswordSource::File(path) => {
            let file = std::fs::File::open(path).map_err(|source| ConfigError::PasswordFile {
                path: path.clone(),
                source,
            })?;
            let mut line = String::new();
            std::io::BufReader::new(file)
                .read_line(&mut line)
                .map_err(|source| ConfigError::PasswordFile {
                    path: path.clone(),
                    source,
                })?;
            line
        }
        PasswordSource::Command(cmd) => {
            let out = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::inherit())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| ConfigError::PasswordCommand(format!("cannot run sh: {e}")))?;
            if !out.status.success() {
                return Err(ConfigError::PasswordCommand(format!(
                    "it exited with {}",
                    out.status
                )));
            }
            let text = String::from_utf8(out.stdout).map_err(|_| {
                ConfigError::PasswordCommand("its output is not valid UTF-8".into())
            })?;
            text.lines().next().unwrap_or("").to_owned()
        }
        PasswordSource::Prompt => {
            if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
                return Err(ConfigError::NoPassword {
                    user: user.into(),
                    why: "not on a terminal, so it cannot be asked for".into(),
                });
            }
            rpassword::prompt_password(format!("Password for {user}: ")).map_err(|e| {
                ConfigError::NoPassword {
                    user: user.into(),
                    why: format!("the prompt failed ({e})"),
                }
            })?
        }
    };
    let pw = pw.trim_end_matches(['\r', '\n']).to_owned();
    if pw.is_empty() {
        return Err(ConfigError::NoPassword {
            user: user.into(),
            why: "the password is empty".into(),
        });
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn resolve(args: &[&str], file: &str) -> Result<Settings, ConfigError> {
        let m = Cli::command()
            .try_get_matches_from(std::iter::once("quizmail").chain(args.iter().copied()))
            .unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        let file = FileConfig::parse(Path::new("/etc/q/config.toml"), file)?;
        Settings::resolve(&cli, &m, file)
    }

    #[test]
    fn server_forms() {
        assert_eq!(parse_server("mx.test").unwrap(), ("mx.test".into(), None));
        assert_eq!(
            parse_server("mx.test:25").unwrap(),
            ("mx.test".into(), Some(25))
        );
        assert_eq!(
            parse_server("[::1]:2525").unwrap(),
            ("::1".into(), Some(2525))
        );
        assert_eq!(parse_server("::1").unwrap(), ("::1".into(), None));
        for bad in [
            "",
            "mx.test:",
            "mx.test:0",
            "mx.test:99999",
            "[::1",
            "a b",
            ":25",
        ] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_and_tls_defaults() {
        let s = resolve(&["--server", "mx.test"], "")
            .unwrap()
            .server
            .unwrap();
        assert_eq!((s.port, s.tls), (587, TlsMode::Starttls));
        let s = resolve(&["--server", "mx.test", "--tls", "implicit"], "")
            .unwrap()
            .server
            .unwrap();
        assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
        let s = resolve(&["--server", "mx.test:465"], "")
            .unwrap()
            .server
            .unwrap();
        assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));
        let s = resolve(&["--server", "mx.test:25", "--port", "26"], "")
            .unwrap()
            .server
            .unwrap();
        assert_eq!(s.port, 26);
    }

    #[test]
    fn a_provider_presets_server_port_and_tls_and_every_flag_or_key_overrides_it() {
        let server = |args: &[&str], file: &str| {
            let s = resolve(args, file).unwrap().server.unwrap();
            (s.host, s.port, s.tls, s.provider.map(|p| p.name))
        };
        assert_eq!(
            server(&["--provider", "gmail"], ""),
            (
                "smtp.gmail.com".into(),
                587,
                TlsMode::Starttls,
                Some("gmail")
            )
        );
        assert_eq!(
            server(&[], "provider = \"yahoo\""),
            (
                "smtp.mail.yahoo.com".into(),
                465,
                TlsMode::Implicit,
                Some("yahoo")
            )
        );
        assert_eq!(server(&["--provider", "mailtrap"], "").1, 2525);
        // Each value is overridden by its own flag or key.
        assert_eq!(
            server(&["--provider", "gmail", "--server", "relay.test"], "").0,
            "relay.test"
        );
        assert_eq!(
            server(&["--provider", "gmail"], "server = \"file.test\"").0,
            "file.test"
        );
        assert_eq!(
            server(&["--provider", "gmail", "--tls", "implicit"], ""),
            (
                "smtp.gmail.com".into(),
                465,
                TlsMode::Implicit,
                Some("gmail")
            )
        );
        assert_eq!(
            server(&["--provider", "yahoo", "--port", "587"], ""),
            (
                "smtp.mail.yahoo.com".into(),
                587,
                TlsMode::Starttls,
                Some("yahoo")
            )
        );
        assert_eq!(
            server(&["--provider", "fastmail"], "port = 2525\ntls = \"none\"").1,
            2525
        );
        // The flag beats the file's provider.
        assert_eq!(
            server(&["--provider", "aol"], "provider = \"gmail\"").0,
            "smtp.aol.com"
        );
        let e = resolve(&[], "provider = \"hotmail\"").unwrap_err();
        assert!(e.to_string().contains("gmail, outlook"), "{e}");
        assert!(resolve(&[], "").unwrap().server.is_none());
    }

    #[test]
    fn flags_beat_the_config_file() {
        let file = "server = \"file.test:2525\"\nuser = \"f\"\ntimeout = 5\n";
        let s = resolve(&["--user", "cli"], file).unwrap().server.unwrap();
        assert_eq!((s.host.as_str(), s.port), ("file.test", 2525));
        assert_eq!(s.user.as_deref(), Some("cli"));
        assert_eq!(s.timeout, Duration::from_secs(5));
        let s = resolve(&["--server", "cli.test"], file)
            .unwrap()
            .server
            .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("cli.test", 587));
    }

    #[test]
    fn timeout_in_the_file_is_bounded() {
        for bad in ["0", "86401", "9223372036854775807"] {
            let e = resolve(&[], &format!("server = \"x\"\ntimeout = {bad}\n")).unwrap_err();
            assert!(e.to_string().contains("1 to 86400"), "{e}");
        }
    }

    #[test]
    fn port_zero_in_the_file_is_refused() {
        let e = resolve(&[], "server = \"x:25\"\nport = 0\n").unwrap_err();
        assert!(e.to_string().contains("port = 0"), "{e}");
    }

    #[test]
    fn config_errors_name_line_and_column() {
        let e = resolve(&[], "server = \"x\"\nsrever = 1\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 2, column 1"), "{msg}");
        let e = resolve(&[], "password = \"hunter2\"\n").unwrap_err();
        assert!(e.to_string().contains("password_command"), "{e}");
    }

    #[test]
    fn relative_paths_in_the_file_are_relative_to_it() {
        let s = resolve(&[], "server = \"x\"\nca_file = \"ca.pem\"\n").unwrap();
        assert_eq!(
            s.server.unwrap().ca_file.unwrap(),
            PathBuf::from("/etc/q/ca.pem")
        );
    }

    #[test]
    fn a_verification_flag_replaces_the_files_choice() {
        let hex = "ab".repeat(32);
        let file = "server = \"x\"\ninsecure = true\n";
        let s = resolve(&["--tls-fingerprint", &hex], file)
            .unwrap()
            .server
            .unwrap();
        assert!(!s.insecure);
        assert_eq!(s.fingerprint, Some([0xab; 32]));
        let file = format!("server = \"x\"\ntls_fingerprint = \"{hex}\"\n");
        let s = resolve(&["--ca-file", "corp.pem"], &file)
            .unwrap()
            .server
            .unwrap();
        assert_eq!(s.fingerprint, None);
        assert_eq!(s.ca_file, Some(PathBuf::from("corp.pem")));
        let s = resolve(&[], &file).unwrap().server.unwrap();
        assert_eq!(s.fingerprint, Some([0xab; 32]));
    }

    const ACCOUNTS: &str = "server = \"top.test\"\nuser = \"top\"\nehlo = \"top.ehlo\"\ntimeout = 7\n\
        from = \"Top <top@top.test>\"\n\
        default_account = \"home\"\n\
        \n[accounts.work]\nserver = \"smtp.work.test:2525\"\nuser = \"w\"\nfrom = \"Ada <ada@Work.Test>\"\n\
        \n[accounts.catchall]\nserver = \"any.work.test\"\nfrom = \"*@work.test\"\n\
        \n[accounts.home]\nserver = \"smtp.home.test\"\nuser = \"h\"\nfrom = \"ada@home.test\"\ndkim_key = \"home.pem\"\n";

    fn server_of(s: &Settings) -> (&str, Option<&str>) {
        let srv = s.server.as_ref().unwrap();
        (srv.host.as_str(), srv.user.as_deref())
    }

    #[test]
    fn precedence_is_flag_then_account_then_top_level() {
        // The explicit account's keys beat the top level's; what it leaves out falls through.
        let s = resolve(&["--account", "work"], ACCOUNTS).unwrap();
        assert_eq!(server_of(&s), ("smtp.work.test", Some("w")));
        let srv = s.server.as_ref().unwrap();
        assert_eq!(srv.port, 2525);
        assert_eq!(srv.ehlo.as_deref(), Some("top.ehlo"));
        assert_eq!(srv.timeout, Duration::from_secs(7));
        assert_eq!(s.from.as_deref(), Some("Ada <ada@Work.Test>"));
        // A flag beats the account.
        let s = resolve(
            &["--account", "work", "--user", "cli", "--port", "26"],
            ACCOUNTS,
        )
        .unwrap();
        assert_eq!(server_of(&s), ("smtp.work.test", Some("cli")));
        assert_eq!(s.server.as_ref().unwrap().port, 26);
        // No --account and no --from: the default account, and its from.
        let s = resolve(&[], ACCOUNTS).unwrap();
        assert_eq!(server_of(&s), ("smtp.home.test", Some("h")));
        assert_eq!(s.from.as_deref(), Some("ada@home.test"));
        assert_eq!(s.dkim_key, Some(PathBuf::from("/etc/q/home.pem")));
        // No accounts chosen at all: the top level.
        let s = resolve(
            &[],
            "server = \"top.test\"\n[accounts.a]\nserver = \"a.test\"\n",
        )
        .unwrap();
        assert_eq!(server_of(&s).0, "top.test");
    }

    #[test]
    fn the_from_address_picks_the_account() {
        // Exactly (the domain without regard to case, display names ignored) ...
        let s = resolve(&["--from", "Ada L. <ada@work.TEST>"], ACCOUNTS).unwrap();
        assert_eq!(server_of(&s), ("smtp.work.test", Some("w")));
        // ... and the --from given stays the From: an account cannot change it.
        assert_eq!(s.from.as_deref(), Some("Ada L. <ada@work.TEST>"));
        // The local part is case-sensitive, so this is the *@work.test pattern.
        let s = resolve(&["--from", "ADA@work.test"], ACCOUNTS).unwrap();
        assert_eq!(server_of(&s), ("any.work.test", Some("top")));
        let s = resolve(&["--from", "bob@WORK.test"], ACCOUNTS).unwrap();
        assert_eq!(server_of(&s).0, "any.work.test");
        // No match: the default account; --account beats a match.
        let s = resolve(&["--from", "bob@elsewhere.test"], ACCOUNTS).unwrap();
        assert_eq!(server_of(&s).0, "smtp.home.test");
        let s = resolve(&["--from", "ada@work.test", "--account", "home"], ACCOUNTS).unwrap();
        assert_eq!(server_of(&s).0, "smtp.home.test");
        assert_eq!(s.from.as_deref(), Some("ada@work.test"));
        // A pattern is never used as the From address.
        let s = resolve(&["--account", "catchall"], ACCOUNTS).unwrap();
        assert_eq!(s.from.as_deref(), Some("Top <top@top.test>"));
    }

    #[test]
    fn unknown_accounts_and_keys_name_the_file_and_line() {
        let e = resolve(&["--account", "wrok"], ACCOUNTS)
            .unwrap_err()
            .to_string();
        for part in [
            "/etc/q/config.toml",
            "\"wrok\"",
            "work (line 8)",
            "catchall (line 13)",
            "home (line 17)",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
        let file = "server = \"x\"\ndefault_account = \"hom\"\n[accounts.home]\nuser = \"h\"\n";
        let e = resolve(&[], file).unwrap_err().to_string();
        for part in ["/etc/q/config.toml", "line 2", "\"hom\"", "home (line 3)"] {
            assert!(e.contains(part), "{part}: {e}");
        }
        let file = "server = \"x\"\n\n[accounts.home]\nuser = \"h\"\nsrever = \"y\"\n";
        let e = resolve(&[], file).unwrap_err().to_string();
        for part in ["/etc/q/config.toml", "line 5", "srever"] {
            assert!(e.contains(part), "{part}: {e}");
        }
        let file = "[accounts.home]\npassword = \"hunter2\"\n";
        let e = resolve(&[], file).unwrap_err().to_string();
        assert!(
            e.contains("[accounts.home]") && e.contains("password_command"),
            "{e}"
        );
        let file = "[accounts.home]\ndefault_account = \"home\"\n";
        let e = resolve(&[], file).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("top of the file"), "{e}");
        let file = "[accounts.home.accounts.inner]\nuser = \"x\"\n";
        assert!(resolve(&[], file)
            .unwrap_err()
            .to_string()
            .contains("do not nest"));
    }

    #[test]
    fn fingerprints() {
        let hex = "AB:".repeat(31) + "CD";
        let fp = parse_fingerprint(&hex).unwrap();
        assert_eq!(fp[0], 0xab);
        assert_eq!(fp[31], 0xcd);
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn password_file_and_command() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\nsecond line\n").unwrap();
        assert_eq!(
            read_password(&PasswordSource::File(p), "u").unwrap(),
            "s3cret"
        );
        let cmd = PasswordSource::Command("printf 'from-cmd\\nx\\n'".into());
        assert_eq!(read_password(&cmd, "u").unwrap(), "from-cmd");
        let failing = PasswordSource::Command("exit 3".into());
        assert!(matches!(
            read_password(&failing, "u"),
            Err(ConfigError::PasswordCommand(_))
        ));
        let empty = PasswordSource::Command("true".into());
        assert!(matches!(
            read_password(&empty, "u"),
            Err(ConfigError::NoPassword { .. })
        ));
    }
}
