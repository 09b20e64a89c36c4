//! `rain compact-database`: rewrites the configured resume database into a fresh file,
//! keeping the old one as `<database>.bak`. The server must not be running (the database
//! lock makes that an error, not a corruption).

use std::io::Write;

use rain_runtime::resume::{ResumeDb, ResumeDbOptions};

use crate::cli::CliError;

/// Compacts the database named by the config at `config_path`.
pub fn run(config_path: Option<&str>, out: &mut dyn Write) -> Result<(), CliError> {
    let config = crate::server::load_config(config_path)?;
    let opts = ResumeDbOptions {
        file_permissions: config.file_permissions,
        ..ResumeDbOptions::default()
    };
    if !config.database.exists() {
        return Err(CliError::Failed(format!(
            "no database at {}",
            config.database.display()
        )));
    }
    let report = ResumeDb::compact(&config.database, &opts)
        .map_err(|e| CliError::Failed(format!("cannot compact the database: {e}")))?;
    for (id, e) in &report.dropped {
        tracing::warn!(torrent = %id, "unreadable record dropped: {e}");
    }
    writeln!(
        out,
        "compacted {}: {} torrents kept, {} dropped, {} -> {} bytes (old file: {})",
        config.database.display(),
        report.kept,
        report.dropped.len(),
        report.size_before,
        report.size_after,
        report.backup.display()
    )
    .map_err(|e| CliError::Failed(e.to_string()))
}
