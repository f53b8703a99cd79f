//! The three ways to get a Postgres server: a container, local binaries, or a URL.

pub mod docker;
pub mod local;

/// Which backend `setup` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// Docker when an engine answers, else local binaries.
    #[default]
    Auto,
    Docker,
    Local,
    Url,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "docker" => Ok(Self::Docker),
            "local" => Ok(Self::Local),
            "url" => Ok(Self::Url),
            other => Err(format!(
                "unknown backend `{other}`: use auto, docker, local or url"
            )),
        }
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Docker => "docker",
            Self::Local => "local",
            Self::Url => "url",
        })
    }
}
