//! TLS (`ssl = true`): backend-core's one trust policy
//! ([`backend_core::tls`]) in the MongoDB driver's terms. The driver reads
//! its roots and client identity from files only, and trusts a bundled
//! root list when it has no CA file; so the checked roots (the CA file's,
//! or the system's) are always written to a CA file, and a certificate and
//! key given as two files are joined into the one PEM file it takes. The
//! files live in a private (0700) temporary folder only while the client is
//! built (the driver reads them then) and are removed right after.

use std::path::PathBuf;

use backend_core::config::TlsFiles;
use backend_core::tls::TlsMaterial;
use mongodb::options::TlsOptions;

/// The temporary files handed to the driver; removed on drop.
pub(crate) struct DriverFiles {
    dir: PathBuf,
    /// The options pointing at them.
    pub(crate) options: TlsOptions,
}

impl Drop for DriverFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Checks the files and writes what the driver reads.
pub(crate) fn driver_files(pool: &str, files: &TlsFiles) -> Result<DriverFiles, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let material = TlsMaterial::load(files).map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!(
        "backend-mongo-tls-{}-{}-{pool}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    create_private_dir(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    // Owns the folder from here on, so an error below removes it too.
    let mut out = DriverFiles {
        dir: dir.clone(),
        options: TlsOptions::default(),
    };
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        Ok(path)
    };
    out.options.ca_file_path = Some(write("roots.pem", &material.roots_pem())?);
    if let Some(id) = material.identity() {
        let mut pem = id.cert_pem.clone();
        pem.push(b'\n');
        pem.extend_from_slice(&id.key_pem);
        out.options.cert_key_file_path = Some(write("identity.pem", &pem)?);
    }
    Ok(out)
}

#[cfg(unix)]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir(dir)
}
