//! Where the service binaries and the region directory are.
//!
//! The binaries `transfer-out` and `transfer-in` are built into the same target directory as
//! everything else. Cargo hands `CARGO_BIN_EXE_*` only to the tests of the package that defines
//! a binary, so the harness finds them from the running executable instead: a test executable
//! lives in `target/<profile>/deps`, the `yibao` CLI in `target/<profile>`, and both mean
//! `target/<profile>`. `YIBAO_BIN_DIR` overrides the guess.

use std::path::{Path, PathBuf};

use crate::HarnessError;

/// The environment variable that names the directory holding the service binaries.
pub const BIN_DIR_ENV: &str = "YIBAO_BIN_DIR";

/// The directory that holds the service binaries: `YIBAO_BIN_DIR` when set and not empty,
/// otherwise `target/<profile>` worked out from the running executable (see
/// [`bin_dir_of_executable`]).
pub fn default_bin_dir() -> Result<PathBuf, HarnessError> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV)
        && !dir.is_empty()
    {
        return Ok(PathBuf::from(dir));
    }
    let executable =
        std::env::current_exe().map_err(HarnessError::io("locating the running executable"))?;
    Ok(bin_dir_of_executable(&executable))
}

/// `target/<profile>` for an executable in it or in its `deps` or `examples` directory (where
/// cargo puts test and example executables).
pub fn bin_dir_of_executable(executable: &Path) -> PathBuf {
    let directory = executable.parent().unwrap_or(Path::new("."));
    let nested = directory
        .file_name()
        .is_some_and(|name| name == "deps" || name == "examples");
    match directory.parent() {
        Some(profile) if nested => profile.to_path_buf(),
        _ => directory.to_path_buf(),
    }
}

/// The path of the binary `name` in `bin_dir`, with the platform's executable suffix.
pub fn binary_path(bin_dir: &Path, name: &str) -> PathBuf {
    bin_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The repository's region directory, `deploy/regions.toml`, located from this crate's source
/// directory when the harness was compiled.
pub fn default_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("deploy")
        .join("regions.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_executable_in_deps_means_the_profile_directory() {
        let found = bin_dir_of_executable(Path::new("/repo/target/debug/deps/pair-0123abcd"));
        assert_eq!(found, PathBuf::from("/repo/target/debug"));
    }

    #[test]
    fn an_executable_in_the_profile_directory_means_that_directory() {
        let found = bin_dir_of_executable(Path::new("/repo/target/release/yibao"));
        assert_eq!(found, PathBuf::from("/repo/target/release"));
    }

    #[test]
    fn an_example_means_the_profile_directory() {
        let found = bin_dir_of_executable(Path::new("/repo/target/debug/examples/demo"));
        assert_eq!(found, PathBuf::from("/repo/target/debug"));
    }

    #[test]
    fn the_default_directory_is_the_repository_deploy_file() {
        let path = default_directory();
        assert!(path.ends_with("deploy/regions.toml"));
        assert!(path.starts_with(env!("CARGO_MANIFEST_DIR")));
    }
}
