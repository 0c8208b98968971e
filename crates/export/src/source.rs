//! Which checkpoint `ticket export INPUT` means: a checkpoint file as given, or one level of an
//! experiment directory, `DIR/level_NN/final.safetensors`, with the level from `--level` or from
//! `DIR/ticket.json` (`{"level": N}`, the chosen ticket). All knowledge of the experiment
//! layout that exporting needs is in [`resolve_checkpoint`].

use crate::Result;
use std::path::{Path, PathBuf};
use ticket_core::Error;

/// The checkpoint file that `input` (and `level`, for a directory) designate.
pub fn resolve_checkpoint(input: &Path, level: Option<usize>) -> Result<PathBuf> {
    if !input.is_dir() {
        if level.is_some() {
            return Err(Error::usage(format!(
                "{}: --level selects a level of an experiment directory, not of a checkpoint file",
                input.display()
            ))
            .into());
        }
        return Ok(input.to_path_buf());
    }
    let level = match level {
        Some(level) => level,
        None => chosen_level(input)?.ok_or_else(|| {
            Error::usage(format!(
                "{} is an experiment directory without ticket.json: pass --level N (levels found: {})",
                input.display(),
                levels_found(input)
            ))
        })?,
    };
    let path = input.join(format!("level_{level:02}")).join("final.safetensors");
    if !path.is_file() {
        return Err(Error::invalid(
            &path,
            format!("no such checkpoint (levels found: {})", levels_found(input)),
        )
        .into());
    }
    Ok(path)
}

/// The level named by `dir/ticket.json`, if that file exists.
fn chosen_level(dir: &Path) -> Result<Option<usize>> {
    let path = dir.join("ticket.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e).into()),
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(&path, format!("not valid JSON: {e}")))?;
    let level = json
        .get("level")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| Error::invalid(&path, "has no `level` holding a non-negative integer"))?;
    Ok(Some(level as usize))
}

/// The `level_NN` subdirectories of `dir`, for error messages: `0, 1, 2` or `none`.
fn levels_found(dir: &Path) -> String {
    let mut levels: Vec<usize> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("level_")?.parse().ok())
        .collect();
    levels.sort_unstable();
    if levels.is_empty() {
        return "none".to_string();
    }
    levels.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn experiment(levels: &[usize]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for level in levels {
            let level_dir = dir.path().join(format!("level_{level:02}"));
            fs::create_dir(&level_dir).unwrap();
            fs::write(level_dir.join("final.safetensors"), b"").unwrap();
        }
        dir
    }

    #[test]
    fn a_file_is_itself() {
        let dir = experiment(&[]);
        let file = dir.path().join("c.safetensors");
        assert_eq!(resolve_checkpoint(&file, None).unwrap(), file);
        let err = resolve_checkpoint(&file, Some(3)).unwrap_err().to_string();
        assert!(err.contains("c.safetensors: --level selects"), "{err}");
    }

    #[test]
    fn a_directory_needs_a_level() {
        let dir = experiment(&[0, 1, 12]);
        assert_eq!(
            resolve_checkpoint(dir.path(), Some(12)).unwrap(),
            dir.path().join("level_12/final.safetensors")
        );
        let err = resolve_checkpoint(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("pass --level N (levels found: 0, 1, 12)"), "{err}");
        let err = resolve_checkpoint(dir.path(), Some(5)).unwrap_err().to_string();
        assert!(err.contains("level_05/final.safetensors: no such checkpoint"), "{err}");
    }

    #[test]
    fn ticket_json_names_the_default_level() {
        let dir = experiment(&[0, 1, 2]);
        fs::write(dir.path().join("ticket.json"), r#"{"level": 1, "density": 0.8}"#).unwrap();
        assert_eq!(
            resolve_checkpoint(dir.path(), None).unwrap(),
            dir.path().join("level_01/final.safetensors")
        );
        // --level wins over the file.
        assert_eq!(
            resolve_checkpoint(dir.path(), Some(2)).unwrap(),
            dir.path().join("level_02/final.safetensors")
        );
        fs::write(dir.path().join("ticket.json"), r#"{"level": "one"}"#).unwrap();
        let err = resolve_checkpoint(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("ticket.json: has no `level`"), "{err}");
        fs::write(dir.path().join("ticket.json"), "{").unwrap();
        let err = resolve_checkpoint(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("ticket.json: not valid JSON"), "{err}");
    }
}
