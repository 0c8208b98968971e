//! Which models to serve: `--model NAME=PATH`, `--model PATH` (named after the file) or
//! `--model DIR` (every `*.safetensors` file in it, each named after its file), loaded and
//! validated before the server takes its first request.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use ticket_infer::SparseModel;

/// A model and the name it is served under.
pub struct NamedModel {
    pub name: String,
    pub path: PathBuf,
    pub model: SparseModel,
}

/// Model names are path segments of the URLs: letters, digits, `-`, `_` and `.`.
fn check_name(spec: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Error::spec(
            spec,
            format!("model name '{name}' must be letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// The name a file is served under: its file name without `.safetensors` (and `.csr`).
fn name_of(path: &Path) -> String {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = file.strip_suffix(".safetensors").unwrap_or(&file);
    stem.strip_suffix(".csr").unwrap_or(stem).to_string()
}

/// The `(name, path)` pairs one `--model` argument stands for.
fn resolve(spec: &str) -> Result<Vec<(String, PathBuf)>> {
    if let Some((name, path)) = spec.split_once('=') {
        check_name(spec, name)?;
        return Ok(vec![(name.to_string(), PathBuf::from(path))]);
    }
    let path = PathBuf::from(spec);
    if !path.is_dir() {
        let name = name_of(&path);
        check_name(spec, &name)?;
        return Ok(vec![(name, path)]);
    }
    let mut files = std::fs::read_dir(&path)
        .map_err(|e| Error::dir(&path, e))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::dir(&path, e))?;
    files.retain(|f| f.is_file() && f.to_string_lossy().ends_with(".safetensors"));
    files.sort();
    if files.is_empty() {
        return Err(Error::spec(spec, "the directory holds no .safetensors model"));
    }
    files
        .into_iter()
        .map(|f| {
            let name = name_of(&f);
            check_name(spec, &name)?;
            Ok((name, f))
        })
        .collect()
}

/// Loads every model the `--model` arguments name; names must be unique.
pub fn load(specs: &[String]) -> Result<Vec<NamedModel>> {
    if specs.is_empty() {
        return Err(Error::Config("no model to serve: give --model NAME=PATH".into()));
    }
    let mut models: Vec<NamedModel> = Vec::new();
    for spec in specs {
        for (name, path) in resolve(spec)? {
            if let Some(other) = models.iter().find(|m| m.name == name) {
                return Err(Error::spec(
                    spec,
                    format!("model name '{name}' is taken by {}", other.path.display()),
                ));
            }
            let model = SparseModel::load(&path)?;
            models.push(NamedModel { name, path, model });
        }
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_spec_or_the_file() {
        assert_eq!(resolve("a=x/y.bin").unwrap(), vec![("a".into(), PathBuf::from("x/y.bin"))]);
        assert_eq!(resolve("dir/lenet.csr.safetensors").unwrap()[0].0, "lenet");
        assert_eq!(resolve("dir/m.safetensors").unwrap()[0].0, "m");
        let bad = resolve("a b=x").err().unwrap().to_string();
        assert!(bad.contains("model name 'a b'"), "{bad}");
        assert!(resolve("=x").is_err());
    }

    #[test]
    fn a_directory_serves_each_model_file_in_it() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.safetensors", "a.csr.safetensors", "notes.txt"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let found = resolve(dir.path().to_str().unwrap()).unwrap();
        let names: Vec<_> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let empty = tempfile::tempdir().unwrap();
        let err = resolve(empty.path().to_str().unwrap()).err().unwrap().to_string();
        assert!(err.contains("no .safetensors model"), "{err}");
    }

    #[test]
    fn duplicate_names_and_missing_models_are_errors() {
        assert!(load(&[]).err().unwrap().to_string().contains("no model to serve"));
        let err = load(&["m=/nonexistent/m.safetensors".into()]).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/m.safetensors"), "{err}");
    }
}
