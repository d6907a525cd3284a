//! Where a process finds its TLS directory and the property store's endpoints.
//!
//! Each setting comes from the first of these that has it:
//!
//! ```text
//!   --tls-dir / --store  >  STRAND_TLS_DIR / STRAND_STORE  >  config file  >  default
//!
//!   config file: $STRAND_CONFIG, else $XDG_CONFIG_HOME/strand/config.toml
//!                (default ~/.config/strand/config.toml); TOML:
//!                    tls_dir = "/etc/strand/tls"        # relative: to the file's directory
//!                    store   = ["10.0.0.1:7400", "10.0.0.2:7400"]
//!   default TLS dir: $XDG_DATA_HOME/strand/tls (default ~/.local/share/strand/tls)
//!   default store: none (the caller decides, e.g. a local quick start)
//! ```
//!
//! [`tls_material_for`] makes local quick starts need no manual step: when the TLS directory
//! has no CA yet it creates a development CA (and logs "created a development CA in DIR"),
//! and when the CA key is there but the process's certificate is not, it issues one. Several
//! processes starting at once take turns through a lock file, so exactly one CA is created.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use crate::authz::{Role, RoleSet};
use crate::transport::tls::{self, RoleName, TlsDir, TlsError, TlsMaterial};
use crate::transport::PeerRole;

/// The environment variable naming the TLS directory.
pub const TLS_DIR_ENV: &str = "STRAND_TLS_DIR";
/// The environment variable listing store endpoints, comma-separated.
pub const STORE_ENV: &str = "STRAND_STORE";
/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "STRAND_CONFIG";
/// The common name of CAs created by [`tls_material_for`].
pub const DEV_CA_NAME: &str = "strand development CA";

/// How long [`tls_material_for`] waits for another process's lock on the TLS directory.
const LOCK_WAIT: Duration = Duration::from_secs(15);
/// A lock file older than this is left over from a crashed process and is removed.
const LOCK_STALE: Duration = Duration::from_secs(30);

/// Why settings could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The operating system's description.
        reason: String,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {reason}")]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's description, with line and column.
        reason: String,
    },
    /// A key of the config file is unknown or has the wrong type or value.
    #[error("config file {path}, key `{key}`: {reason}")]
    ConfigKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A store endpoint is not `host:port`.
    #[error("store endpoint {value:?} from {origin}: {reason}")]
    BadEndpoint {
        /// The text given.
        value: String,
        /// Where it came from (flag, environment variable, config file).
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A default location needs a home directory and none is known.
    #[error(
        "cannot find the default {what}: neither {xdg} nor HOME is set (use --tls-dir or {TLS_DIR_ENV})"
    )]
    NoHome {
        /// What was being located.
        what: String,
        /// The XDG variable consulted.
        xdg: String,
    },
    /// Another process holds the TLS directory's lock for too long.
    #[error("cannot lock {path}: {reason}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// Certificates could not be created or loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag.
    Flag,
    /// An environment variable.
    Env,
    /// The config file.
    ConfigFile(PathBuf),
    /// The built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => f.write_str("flag"),
            Origin::Env => f.write_str("environment"),
            Origin::ConfigFile(p) => write!(f, "config file {}", p.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// A property store endpoint, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl Endpoint {
    /// The socket addresses the host resolves to (DNS for names).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| "expected host:port".to_string())?;
        let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        let host = bracketed.unwrap_or(host);
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        if host.contains(|c: char| c.is_whitespace() || c == '/' || c == '[' || c == ']') {
            return Err(format!("{host:?} is not a host name or address"));
        }
        if host.contains(':') && (bracketed.is_none() || host.parse::<std::net::Ipv6Addr>().is_err()) {
            return Err("an IPv6 address must be written [addr]:port".into());
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{port:?} is not a port (0-65535)"))?;
        if port == 0 {
            return Err("port 0 is not a reachable port".into());
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

/// The command-line flags that settings honour; flatten into a command's arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SettingsFlags {
    /// The TLS directory (CA, certificates, keys) [env: STRAND_TLS_DIR].
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Property store endpoints, host:port, repeated or comma-separated [env: STRAND_STORE].
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    pub store: Vec<String>,
}

/// Where this process finds its TLS directory and the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The TLS directory.
    pub tls_dir: PathBuf,
    /// Where [`Settings::tls_dir`] came from.
    pub tls_dir_origin: Origin,
    /// Property store endpoints (possibly none).
    pub store: Vec<Endpoint>,
    /// Where [`Settings::store`] came from.
    pub store_origin: Origin,
    /// The config file that was read, if one was.
    pub config_file: Option<PathBuf>,
}

/// The config file's contents, checked.
#[derive(Debug, Default)]
struct FileSettings {
    tls_dir: Option<PathBuf>,
    store: Option<Vec<Endpoint>>,
}

impl Settings {
    /// Loads settings from `flags`, the process's environment and the config file.
    pub fn load(flags: &SettingsFlags) -> Result<Settings, SettingsError> {
        Self::load_with_env(flags, |key| std::env::var_os(key))
    }

    /// Like [`Settings::load`], with the environment given by `env` (for tests).
    pub fn load_with_env(
        flags: &SettingsFlags,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Settings, SettingsError> {
        let var = |key: &str| env(key).filter(|v| !v.is_empty());
        let (config_path, required) = match var(CONFIG_ENV) {
            Some(p) => (Some(PathBuf::from(p)), true),
            None => (
                config_home(&var).map(|d| d.join("strand").join("config.toml")),
                false,
            ),
        };
        let (file, config_file) = match config_path {
            Some(path) if required || path.exists() => (read_config(&path)?, Some(path)),
            _ => (FileSettings::default(), None),
        };
        let file_origin = || Origin::ConfigFile(config_file.clone().unwrap_or_default());

        let (tls_dir, tls_dir_origin) = if let Some(dir) = &flags.tls_dir {
            (dir.clone(), Origin::Flag)
        } else if let Some(dir) = var(TLS_DIR_ENV) {
            (PathBuf::from(dir), Origin::Env)
        } else if let Some(dir) = file.tls_dir {
            (dir, file_origin())
        } else {
            let data = data_home(&var).ok_or_else(|| SettingsError::NoHome {
                what: "TLS directory".into(),
                xdg: "XDG_DATA_HOME".into(),
            })?;
            (data.join("strand").join("tls"), Origin::Default)
        };

        let (store, store_origin) = if !flags.store.is_empty() {
            (
                parse_endpoints(flags.store.iter().map(String::as_str), "--store")?,
                Origin::Flag,
            )
        } else if let Some(list) = var(STORE_ENV) {
            let list = list.to_string_lossy().into_owned();
            (parse_endpoints(list.split(','), STORE_ENV)?, Origin::Env)
        } else if let Some(store) = file.store {
            (store, file_origin())
        } else {
            (Vec::new(), Origin::Default)
        };

        Ok(Settings {
            tls_dir,
            tls_dir_origin,
            store,
            store_origin,
            config_file,
        })
    }
}

fn config_home(var: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))
}

fn data_home(var: &impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    var("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
}

fn parse_endpoints<'a>(
    values: impl Iterator<Item = &'a str>,
    origin: &str,
) -> Result<Vec<Endpoint>, SettingsError> {
    values
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse().map_err(|reason| SettingsError::BadEndpoint {
                value: v.to_string(),
                origin: origin.to_string(),
                reason,
            })
        })
        .collect()
}

fn read_config(path: &Path) -> Result<FileSettings, SettingsError> {
    let text = fs::read_to_string(path).map_err(|e| SettingsError::ConfigRead {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_config(path, &text)
}

fn parse_config(path: &Path, text: &str) -> Result<FileSettings, SettingsError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| SettingsError::ConfigSyntax {
            path: path.to_path_buf(),
            reason: e.to_string().trim_end().to_string(),
        })?;
    let key_err = |key: &str, reason: String| SettingsError::ConfigKey {
        path: path.to_path_buf(),
        key: key.to_string(),
        reason,
    };
    let mut out = FileSettings::default();
    for (key, value) in &table {
        match key.as_str() {
            "tls_dir" => {
                let dir = value
                    .as_str()
                    .ok_or_else(|| key_err(key, format!("expected a string, found {}", value.type_str())))?;
                if dir.is_empty() {
                    return Err(key_err(key, "the path is empty".into()));
                }
                let dir = PathBuf::from(dir);
                // A relative path is relative to the file, not to wherever the process runs.
                out.tls_dir = Some(match path.parent() {
                    Some(parent) if dir.is_relative() => parent.join(dir),
                    _ => dir,
                });
            }
            "store" => {
                let items = value.as_array().ok_or_else(|| {
                    key_err(
                        key,
                        format!(
                            "expected a list of \"host:port\" strings, found {}",
                            value.type_str()
                        ),
                    )
                })?;
                let mut store = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let text = item.as_str().ok_or_else(|| {
                        key_err(
                            key,
                            format!("item {i}: expected a string, found {}", item.type_str()),
                        )
                    })?;
                    let endpoint = text
                        .parse()
                        .map_err(|reason| key_err(key, format!("item {i} ({text:?}): {reason}")))?;
                    store.push(endpoint);
                }
                out.store = Some(store);
            }
            other => {
                return Err(key_err(other, "unknown key (known keys: tls_dir, store)".into()));
            }
        }
    }
    Ok(out)
}

/// The TLS material `name` needs to run as `role`, from the settings' TLS directory: a node
/// certificate for the roles that run a node, else a client certificate. See
/// [`tls_material_as`].
pub fn tls_material_for(settings: &Settings, name: &str, role: Role) -> Result<TlsMaterial, SettingsError> {
    let kind = if role.is_node() {
        PeerRole::Node
    } else {
        PeerRole::Client
    };
    tls_material_as(settings, name, kind, RoleSet::of(role))
}

/// The TLS material `name` needs to run as a `kind` (node or client) certificate granting
/// at least `roles`, from the settings' TLS directory.
///
/// With no CA in the directory, a development CA is created first ("created a development CA
/// in DIR" in the log); with the CA key present and no certificate for `name` (or one that
/// lacks some of `roles`, or predates roles), one is issued with the roles it had and
/// `roles`. Without the CA key, a certificate lacking a role is an error naming the command
/// that issues one. Safe to call from several processes at once: they take turns through
/// `DIR/.lock`.
pub fn tls_material_as(
    settings: &Settings,
    name: &str,
    kind: PeerRole,
    roles: RoleSet,
) -> Result<TlsMaterial, SettingsError> {
    tls::validate_name(name)?;
    let dir = TlsDir::new(&settings.tls_dir);
    let sufficient = |m: &TlsMaterial| m.roles().contains_all(roles);
    if dir.has_ca() && dir.has_certificate(name, kind) {
        if let Ok(m) = dir.load(name, kind) {
            if sufficient(&m) {
                return Ok(m);
            }
        }
    }
    dir.create()?;
    let _lock = DirLock::acquire(dir.path())?;
    if !dir.has_ca() {
        if dir.has_ca_key() {
            return Err(TlsError::BadCertificate {
                what: dir.ca_key_path().display().to_string(),
                reason: "the CA key is there but ca.pem is missing; restore it or remove the key".into(),
            }
            .into());
        }
        dir.create_ca(DEV_CA_NAME, false)?;
        tracing::warn!(
            "created a development CA in {}; for production, create one with `strand tls ca generate`",
            dir.path().display()
        );
    }
    // Another process may have issued it while this one waited for the lock.
    let held = if dir.has_certificate(name, kind) {
        match dir.load(name, kind) {
            Ok(m) if sufficient(&m) => return Ok(m),
            Ok(m) => Some(Ok(m)),
            Err(e) => Some(Err(e)),
        }
    } else {
        None
    };
    if !dir.has_ca_key() {
        return Err(match held {
            None => TlsError::NoCertificate {
                dir: dir.path().to_path_buf(),
                name: name.to_string(),
                role: RoleName(kind),
            },
            Some(Err(e)) => e,
            Some(Ok(m)) => TlsError::BadCertificate {
                what: dir.cert_path(name, kind).display().to_string(),
                reason: format!(
                    "it grants {}, not {roles}: reissue it with `strand tls {} generate --name {name} --role ROLE --force`",
                    m.roles(),
                    RoleName(kind)
                ),
            },
        }
        .into());
    }
    // A half-written pair (one file of two), a certificate from before roles, or one that
    // lacks a role is replaced; the roles it granted are kept.
    let granted = match &held {
        Some(Ok(m)) => m.roles().union(roles),
        _ => roles,
    };
    dir.issue(name, kind, granted, &[], &[], true)?;
    tracing::info!(
        "issued a {} certificate for {name} ({granted}) in {}",
        RoleName(kind),
        dir.path().display()
    );
    Ok(dir.load(name, kind)?)
}

/// An exclusive lock on a directory: the file `DIR/.lock`, created with `create_new` and
/// removed on drop. A lock file older than [`LOCK_STALE`] is from a crashed process.
struct DirLock {
    path: PathBuf,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<DirLock, SettingsError> {
        let path = dir.join(".lock");
        let started = Instant::now();
        loop {
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(DirLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > LOCK_STALE) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if started.elapsed() > LOCK_WAIT {
                        return Err(SettingsError::Lock {
                            path,
                            reason: format!("held by another process for more than {LOCK_WAIT:?}"),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(SettingsError::Lock {
                        path,
                        reason: e.to_string(),
                    })
                }
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: BTreeMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn endpoints_parse_and_refuse() {
        let e: Endpoint = "store-1:7400".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("store-1", 7400));
        let v6: Endpoint = "[::1]:9".parse().unwrap();
        assert_eq!((v6.host.as_str(), v6.to_string()), ("::1", "[::1]:9".to_string()));
        for bad in ["nohost", ":1", "h:0", "h:70000", "h:x", "a b:1", "::1:9"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("c.toml");
        fs::write(&cfg, "tls_dir = \"certs\"\nstore = [\"a:1\", \"b:2\"]\n").unwrap();
        let cfg_s = cfg.to_str().unwrap();
        let home = tmp.path().join("home");
        let home_s = home.to_str().unwrap();

        let none = SettingsFlags::default();
        let s = Settings::load_with_env(&none, env_of(&[("HOME", home_s)])).unwrap();
        assert_eq!(s.tls_dir, home.join(".local/share/strand/tls"));
        assert_eq!((s.tls_dir_origin, s.store.len()), (Origin::Default, 0));

        let s = Settings::load_with_env(&none, env_of(&[("HOME", home_s), (CONFIG_ENV, cfg_s)])).unwrap();
        assert_eq!(s.tls_dir, tmp.path().join("certs"));
        assert_eq!(s.store_origin, Origin::ConfigFile(cfg.clone()));
        assert_eq!(
            s.store.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["a:1", "b:2"]
        );

        let env = env_of(&[
            ("HOME", home_s),
            (CONFIG_ENV, cfg_s),
            (TLS_DIR_ENV, "/env/tls"),
            (STORE_ENV, "c:3, d:4,"),
        ]);
        let s = Settings::load_with_env(&none, &env).unwrap();
        assert_eq!(
            (s.tls_dir, s.tls_dir_origin),
            (PathBuf::from("/env/tls"), Origin::Env)
        );
        assert_eq!(s.store.len(), 2);

        let flags = SettingsFlags {
            tls_dir: Some("/flag/tls".into()),
            store: vec!["e:5".into()],
        };
        let s = Settings::load_with_env(&flags, &env).unwrap();
        assert_eq!(
            (s.tls_dir, s.tls_dir_origin),
            (PathBuf::from("/flag/tls"), Origin::Flag)
        );
        assert_eq!(s.store, vec!["e:5".parse().unwrap()]);

        // The XDG locations win over HOME; the default config file is read when present.
        let xdg_cfg = tmp.path().join("xdgc");
        fs::create_dir_all(xdg_cfg.join("strand")).unwrap();
        fs::write(xdg_cfg.join("strand/config.toml"), "store = [\"x:9\"]").unwrap();
        let env = env_of(&[
            ("HOME", home_s),
            ("XDG_CONFIG_HOME", xdg_cfg.to_str().unwrap()),
            ("XDG_DATA_HOME", "/data"),
        ]);
        let s = Settings::load_with_env(&none, env).unwrap();
        assert_eq!(s.tls_dir, PathBuf::from("/data/strand/tls"));
        assert_eq!(s.store, vec!["x:9".parse().unwrap()]);
    }

    #[test]
    fn bad_config_files_name_the_file_and_key() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("c.toml");
        let load = |text: &str| {
            fs::write(&cfg, text).unwrap();
            Settings::load_with_env(
                &SettingsFlags::default(),
                env_of(&[(CONFIG_ENV, cfg.to_str().unwrap())]),
            )
            .unwrap_err()
        };
        let e = load("tls_dir = 3");
        assert!(
            matches!(&e, SettingsError::ConfigKey { key, .. } if key == "tls_dir"),
            "{e}"
        );
        assert!(e.to_string().contains("c.toml"), "{e}");
        let e = load("tlsdir = \"x\"");
        assert!(
            matches!(&e, SettingsError::ConfigKey { key, .. } if key == "tlsdir"),
            "{e}"
        );
        let e = load("store = [\"nohost\"]");
        assert!(e.to_string().contains("item 0"), "{e}");
        let e = load("store = \"a:1\"");
        assert!(
            matches!(&e, SettingsError::ConfigKey { key, .. } if key == "store"),
            "{e}"
        );
        let e = load("tls_dir = ");
        assert!(matches!(e, SettingsError::ConfigSyntax { .. }), "{e}");
        let e = Settings::load_with_env(
            &SettingsFlags::default(),
            env_of(&[(CONFIG_ENV, tmp.path().join("missing.toml").to_str().unwrap())]),
        )
        .unwrap_err();
        assert!(matches!(e, SettingsError::ConfigRead { .. }), "{e}");
        let e = Settings::load_with_env(
            &SettingsFlags::default(),
            env_of(&[("HOME", "/h"), (STORE_ENV, "a:b")]),
        )
        .unwrap_err();
        assert!(matches!(e, SettingsError::BadEndpoint { .. }), "{e}");
        let e = Settings::load_with_env(&SettingsFlags::default(), env_of(&[])).unwrap_err();
        assert!(matches!(e, SettingsError::NoHome { .. }), "{e}");
    }

    /// Collects what a tracing subscriber writes.
    #[derive(Clone, Default)]
    pub(crate) struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl LogBuffer {
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn settings_at(dir: &Path) -> Settings {
        Settings {
            tls_dir: dir.to_path_buf(),
            tls_dir_origin: Origin::Flag,
            store: Vec::new(),
            store_origin: Origin::Default,
            config_file: None,
        }
    }

    #[test]
    fn first_use_creates_a_development_ca_and_issues_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings_at(&tmp.path().join("fresh/tls"));
        let log = LogBuffer::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let a = tracing::subscriber::with_default(subscriber, || {
            tls_material_for(&s, "localhost_12913", Role::Participant)
        })
        .unwrap();
        assert_eq!(a.name(), "localhost_12913");
        let logged = log.text();
        let expected = format!("created a development CA in {}", s.tls_dir.display());
        assert!(logged.contains(&expected), "{logged}");
        assert!(
            logged.contains("issued a node certificate for localhost_12913"),
            "{logged}"
        );
        let dir = TlsDir::new(&s.tls_dir);
        assert!(dir.has_ca() && dir.has_ca_key());
        let ca = fs::read(dir.ca_cert_path()).unwrap();
        let b = tls_material_for(&s, "admin", Role::Admin).unwrap();
        assert_eq!(b.role(), PeerRole::Client);
        assert_eq!(
            fs::read(dir.ca_cert_path()).unwrap(),
            ca,
            "the CA is created once"
        );
        assert!(!dir.path().join(".lock").exists());
        // A certificate lacking a role asked for is reissued with both, by the same CA.
        let both = tls_material_as(
            &s,
            "localhost_12913",
            PeerRole::Node,
            RoleSet::of(Role::Controller),
        )
        .unwrap();
        assert_eq!(both.roles().to_string(), "controller,participant");
        // Without the CA key, a missing certificate is a clear error, not a new CA.
        fs::remove_file(dir.ca_key_path()).unwrap();
        let e = tls_material_for(&s, "other", Role::Participant).unwrap_err();
        assert!(
            matches!(e, SettingsError::Tls(TlsError::NoCertificate { .. })),
            "{e}"
        );
        assert!(tls_material_for(&s, "localhost_12913", Role::Participant).is_ok());
        // ... and a role it lacks is an error naming the command that issues one.
        let e = tls_material_for(&s, "localhost_12913", Role::Store).unwrap_err();
        assert!(e.to_string().contains("--role ROLE --force"), "{e}");
        assert!(matches!(
            tls_material_for(&s, "bad name", Role::Participant),
            Err(SettingsError::Tls(TlsError::InvalidName { .. }))
        ));
        // (In this test, not one of its own: tracing's callsite cache is process-wide, and
        // a parallel test hitting the same log lines can hide them from the subscriber above.)
        concurrent_first_starts_share_one_ca();
    }

    fn concurrent_first_starts_share_one_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings_at(&tmp.path().join("tls"));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || tls_material_for(&s, &format!("node-{i}"), Role::Store))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        // Every certificate verifies against the one CA on disk.
        let dir = TlsDir::new(&s.tls_dir);
        for i in 0..8 {
            dir.load(&format!("node-{i}"), PeerRole::Node).unwrap();
        }
    }
}
