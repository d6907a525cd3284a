//! `strand tls ca|node|client generate`: the cluster CA and node and client certificates.
//!
//! A certificate grants the roles given with `--role` (repeatable: admin, operator, viewer,
//! controller, participant, spectator, store); without it a node certificate grants
//! participant and a client certificate admin (what every client could do before roles).
//!
//! Files go to the TLS directory (`--dir`, else `--tls-dir`'s usual sources: `STRAND_TLS_DIR`,
//! the config file, `~/.local/share/strand/tls`). Existing files are never replaced without
//! `--force`. Each command prints the files it wrote.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::CliError;
use crate::authz::{Role, RoleSet};
use crate::settings::{Settings, SettingsFlags};
use crate::transport::tls::{TlsDir, TlsError};
use crate::transport::PeerRole;

/// Arguments of `strand tls`.
#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// What to generate.
    #[command(subcommand)]
    pub what: TlsCommand,
}

/// `strand tls …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TlsCommand {
    /// The cluster's certificate authority.
    Ca {
        /// What to do.
        #[command(subcommand)]
        action: CaAction,
    },
    /// Node certificates (store replicas, controllers, participants, spectators).
    Node {
        /// What to do.
        #[command(subcommand)]
        action: CertAction,
    },
    /// Client certificates (the CLI, admin clients).
    Client {
        /// What to do.
        #[command(subcommand)]
        action: ClientAction,
    },
    /// Revoke a certificate: add it to DIR/revoked.txt, which running nodes reload.
    Revoke(RevokeArgs),
}

/// Arguments of `strand tls revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// Every certificate of this name.
    #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
    pub name: Option<String>,
    /// The certificate with this serial (hex, as `openssl x509 -noout -serial` prints it).
    #[arg(long)]
    pub serial: Option<String>,
    /// The TLS directory [default: from STRAND_TLS_DIR, the config file, or
    /// ~/.local/share/strand/tls].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `strand tls ca …`.
#[derive(Debug, clap::Subcommand)]
pub enum CaAction {
    /// Create a new CA: DIR/ca.pem and DIR/ca.key.
    Generate(CaGenerateArgs),
}

/// `strand tls node …`.
#[derive(Debug, clap::Subcommand)]
pub enum CertAction {
    /// Issue a node certificate signed by the CA: DIR/node-NAME.pem and .key.
    Generate(NodeGenerateArgs),
}

/// `strand tls client …`.
#[derive(Debug, clap::Subcommand)]
pub enum ClientAction {
    /// Issue a client certificate signed by the CA: DIR/client-NAME.pem and .key.
    Generate(ClientGenerateArgs),
}

/// Where the files go.
#[derive(Debug, clap::Args)]
pub struct DirArgs {
    /// The TLS directory [default: from STRAND_TLS_DIR, the config file, or
    /// ~/.local/share/strand/tls].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `strand tls ca generate`.
#[derive(Debug, clap::Args)]
pub struct CaGenerateArgs {
    /// The directory and overwrite policy.
    #[command(flatten)]
    pub dir: DirArgs,
    /// The CA's common name.
    #[arg(long, default_value = "strand cluster CA")]
    pub common_name: String,
}

/// Arguments of `strand tls node generate`.
#[derive(Debug, clap::Args)]
pub struct NodeGenerateArgs {
    /// The node's name, e.g. localhost_12913 (letters, digits, '_', '-', '.').
    #[arg(long)]
    pub name: String,
    /// Extra IP address subject names (optional; strand checks the node name).
    #[arg(long, value_name = "IP")]
    pub ip: Vec<IpAddr>,
    /// Extra DNS subject names (optional; strand checks the node name).
    #[arg(long, value_name = "NAME")]
    pub dns: Vec<String>,
    /// A role the certificate grants (controller, participant, spectator, store, or a client
    /// role); repeatable [default: participant].
    #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
    pub roles: Vec<Role>,
    /// The directory and overwrite policy.
    #[command(flatten)]
    pub dir: DirArgs,
}

/// Arguments of `strand tls client generate`.
#[derive(Debug, clap::Args)]
pub struct ClientGenerateArgs {
    /// The client's name (letters, digits, '_', '-', '.').
    #[arg(long)]
    pub name: String,
    /// A role the certificate grants (admin, operator, viewer, …); repeatable [default:
    /// admin].
    #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
    pub roles: Vec<Role>,
    /// The directory and overwrite policy.
    #[command(flatten)]
    pub dir: DirArgs,
}

/// Runs `strand tls`.
pub fn run(args: TlsArgs) -> Result<(), CliError> {
    let written = match args.what {
        TlsCommand::Ca {
            action: CaAction::Generate(a),
        } => {
            let dir = tls_dir(&a.dir)?;
            dir.create_ca(&a.common_name, a.dir.force).map_err(cli_error)?
        }
        TlsCommand::Node {
            action: CertAction::Generate(a),
        } => {
            let dir = tls_dir(&a.dir)?;
            let roles = granted(&a.roles, Role::Participant);
            dir.issue(&a.name, PeerRole::Node, roles, &a.ip, &a.dns, a.dir.force)
                .map_err(cli_error)?
        }
        TlsCommand::Revoke(a) => revoke(a)?,
        TlsCommand::Client {
            action: ClientAction::Generate(a),
        } => {
            let dir = tls_dir(&a.dir)?;
            let roles = granted(&a.roles, Role::Admin);
            dir.issue(&a.name, PeerRole::Client, roles, &[], &[], a.dir.force)
                .map_err(cli_error)?
        }
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn revoke(a: RevokeArgs) -> Result<Vec<PathBuf>, CliError> {
    let dir = tls_dir(&DirArgs {
        dir: a.dir,
        force: false,
    })?;
    let line = match (a.name, a.serial) {
        (Some(name), None) => format!("name {name}"),
        (None, Some(serial)) => format!("serial {serial}"),
        _ => return Err(CliError::usage("give exactly one of --name and --serial")),
    };
    let path = dir.revoke(&line).map_err(|e| match e {
        TlsError::Read { reason, .. } => CliError::usage(reason),
        other => CliError::failed(other),
    })?;
    Ok(vec![path])
}

/// The roles given, or `default` when none was.
fn granted(roles: &[Role], default: Role) -> RoleSet {
    if roles.is_empty() {
        RoleSet::of(default)
    } else {
        roles.iter().copied().collect()
    }
}

fn tls_dir(args: &DirArgs) -> Result<TlsDir, CliError> {
    let flags = SettingsFlags {
        tls_dir: args.dir.clone(),
        store: Vec::new(),
    };
    let settings = Settings::load(&flags).map_err(CliError::usage)?;
    Ok(TlsDir::new(absolute(&settings.tls_dir)))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn cli_error(e: TlsError) -> CliError {
    match e {
        TlsError::InvalidName { .. } => CliError::usage(e),
        other => CliError::failed(other),
    }
}
