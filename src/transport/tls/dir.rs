//! The TLS directory on disk: where the CA and each node's and client's certificate and
//! key live, and how they are written (keys mode 0600, the directory 0700, every file
//! written to a temporary name and renamed into place so a reader never sees half a file).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::issue::{generate_ca, issue_certificate, CertAndKey};
use super::revoke::{Revocations, REVOKED_FILE};
use super::{validate_name, PeerRole, RoleName, TlsError, TlsMaterial};
use crate::authz::RoleSet;

/// A TLS directory: the CA and the certificates of the nodes and clients that run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDir {
    path: PathBuf,
}

impl TlsDir {
    /// The directory at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TlsDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `DIR/ca.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.path.join("ca.pem")
    }

    /// `DIR/ca.key`.
    pub fn ca_key_path(&self) -> PathBuf {
        self.path.join("ca.key")
    }

    /// `DIR/node-NAME.pem` or `DIR/client-NAME.pem`.
    pub fn cert_path(&self, name: &str, role: PeerRole) -> PathBuf {
        self.path.join(format!("{}-{name}.pem", RoleName(role)))
    }

    /// `DIR/node-NAME.key` or `DIR/client-NAME.key`.
    pub fn key_path(&self, name: &str, role: PeerRole) -> PathBuf {
        self.path.join(format!("{}-{name}.key", RoleName(role)))
    }

    /// `DIR/revoked.txt`, the revocation list.
    pub fn revoked_path(&self) -> PathBuf {
        self.path.join(REVOKED_FILE)
    }

    /// The revocation list (empty when the file does not exist).
    pub fn read_revocations(&self) -> Result<Revocations, TlsError> {
        let path = self.revoked_path();
        if !path.exists() {
            return Ok(Revocations::default());
        }
        Revocations::parse(&read_text(&path)?).map_err(|reason| TlsError::Read { path, reason })
    }

    /// Adds `line` (`serial HEX` or `name NAME`) to the revocation list, checked first;
    /// nodes pick it up when they reload their material. Returns the file written.
    pub fn revoke(&self, line: &str) -> Result<PathBuf, TlsError> {
        let path = self.revoked_path();
        let mut text = if path.exists() {
            read_text(&path)?
        } else {
            String::new()
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(line.trim());
        text.push('\n');
        Revocations::parse(&text).map_err(|reason| TlsError::Read {
            path: path.clone(),
            reason,
        })?;
        self.create()?;
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(path)
    }

    /// The files a node's material comes from: the CA, its certificate and key, the
    /// revocation list (a reload watches them).
    pub fn material_files(&self, name: &str, role: PeerRole) -> [PathBuf; 4] {
        [
            self.ca_cert_path(),
            self.cert_path(name, role),
            self.key_path(name, role),
            self.revoked_path(),
        ]
    }

    /// Whether the CA certificate exists.
    pub fn has_ca(&self) -> bool {
        self.ca_cert_path().exists()
    }

    /// Whether the CA's key exists (so certificates can be issued here).
    pub fn has_ca_key(&self) -> bool {
        self.ca_key_path().exists()
    }

    /// Whether `name`'s certificate and key exist.
    pub fn has_certificate(&self, name: &str, role: PeerRole) -> bool {
        self.cert_path(name, role).exists() && self.key_path(name, role).exists()
    }

    /// Creates the directory (mode 0700) if needed.
    pub fn create(&self) -> Result<(), TlsError> {
        create_private_dir(&self.path)
    }

    /// Reads the CA certificate and key.
    pub fn read_ca(&self) -> Result<CertAndKey, TlsError> {
        if !self.has_ca() || !self.has_ca_key() {
            return Err(TlsError::NoCa {
                dir: self.path.clone(),
            });
        }
        Ok(CertAndKey {
            cert_pem: read_text(&self.ca_cert_path())?,
            key_pem: read_text(&self.ca_key_path())?,
        })
    }

    /// Generates a CA and writes `ca.pem` and `ca.key`; refuses to replace them unless
    /// `force`. Returns the files written.
    pub fn create_ca(&self, common_name: &str, force: bool) -> Result<Vec<PathBuf>, TlsError> {
        let files = [self.ca_cert_path(), self.ca_key_path()];
        refuse_existing(&files, force)?;
        self.create()?;
        let ca = generate_ca(common_name)?;
        write_file(&files[1], ca.key_pem.as_bytes(), 0o600)?;
        write_file(&files[0], ca.cert_pem.as_bytes(), 0o644)?;
        Ok(files.to_vec())
    }

    /// Issues `name`'s certificate granting `roles` with this directory's CA and writes it
    /// and its key; refuses to replace them unless `force`. Returns the files written.
    pub fn issue(
        &self,
        name: &str,
        role: PeerRole,
        roles: RoleSet,
        ips: &[IpAddr],
        dns: &[String],
        force: bool,
    ) -> Result<Vec<PathBuf>, TlsError> {
        validate_name(name)?;
        let ca = self.read_ca()?;
        let files = [self.cert_path(name, role), self.key_path(name, role)];
        refuse_existing(&files, force)?;
        let issued = issue_certificate(&ca, name, role, roles, ips, dns)?;
        write_file(&files[1], issued.key_pem.as_bytes(), 0o600)?;
        write_file(&files[0], issued.cert_pem.as_bytes(), 0o644)?;
        Ok(files.to_vec())
    }

    /// Loads the material `name` needs to run as `role`: the CA certificate and its own
    /// certificate and key.
    pub fn load(&self, name: &str, role: PeerRole) -> Result<TlsMaterial, TlsError> {
        validate_name(name)?;
        if !self.has_ca() {
            return Err(TlsError::NoCa {
                dir: self.path.clone(),
            });
        }
        if !self.has_certificate(name, role) {
            return Err(TlsError::NoCertificate {
                dir: self.path.clone(),
                name: name.to_string(),
                role: RoleName(role),
            });
        }
        let cert_path = self.cert_path(name, role);
        // A refused certificate is named by its file.
        let at_path = |e| match e {
            TlsError::BadCertificate { reason, .. } => TlsError::BadCertificate {
                what: cert_path.display().to_string(),
                reason,
            },
            other => other,
        };
        let material = TlsMaterial::from_pem(
            &read_text(&self.ca_cert_path())?,
            &read_text(&cert_path)?,
            &read_text(&self.key_path(name, role))?,
        )
        .and_then(|m| m.with_revocations(self.read_revocations()?))
        .map_err(at_path)?;
        if material.name() != name || material.role() != role {
            return Err(TlsError::BadCertificate {
                what: cert_path.display().to_string(),
                reason: format!(
                    "it names {} {:?}, expected {} {name:?}",
                    RoleName(material.role()),
                    material.name(),
                    RoleName(role)
                ),
            });
        }
        Ok(material)
    }
}

fn refuse_existing(files: &[PathBuf], force: bool) -> Result<(), TlsError> {
    if !force {
        if let Some(existing) = files.iter().find(|f| f.exists()) {
            return Err(TlsError::Exists {
                path: existing.clone(),
            });
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Creates `dir` and its parents; the directory itself gets mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let write_err = |e: std::io::Error| TlsError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(write_err)
}

/// Writes `bytes` to `path` atomically: a new temporary file with `mode` in the same
/// directory, synced, then renamed over `path`.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let write_err = |p: &Path, e: std::io::Error| TlsError::Write {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Role;

    const P: RoleSet = RoleSet::of(Role::Participant);

    #[test]
    fn directory_layout_and_overwrite_protection() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = TlsDir::new(tmp.path().join("tls"));
        assert!(matches!(
            dir.issue("n1", PeerRole::Node, P, &[], &[], false),
            Err(TlsError::NoCa { .. })
        ));
        let written = dir.create_ca("strand cluster CA", false).unwrap();
        assert_eq!(written, vec![dir.ca_cert_path(), dir.ca_key_path()]);
        assert!(matches!(dir.create_ca("x", false), Err(TlsError::Exists { .. })));
        dir.issue("n1", PeerRole::Node, P, &[], &[], false).unwrap();
        assert!(matches!(
            dir.issue("n1", PeerRole::Node, P, &[], &[], false),
            Err(TlsError::Exists { .. })
        ));
        dir.issue("n1", PeerRole::Node, P, &[], &[], true).unwrap();
        let m = dir.load("n1", PeerRole::Node).unwrap();
        assert_eq!(m.name(), "n1");
        assert!(matches!(
            dir.load("n2", PeerRole::Node),
            Err(TlsError::NoCertificate { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.key_path("n1", PeerRole::Node))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(dir.ca_key_path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
