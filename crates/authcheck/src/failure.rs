//! How a command fails, and the exit status each kind of failure gives. Every command returns
//! a [`Failure`]; `main` prints it as one line and exits with [`Failure::exit_code`].
//!
//! The statuses tell a supervisor what to do: the systemd unit restarts the service on 75 and
//! on 1, never on 2 (restarting cannot fix a setting).

use std::process::ExitCode;

use crate::config::ConfigError;

/// `EX_TEMPFAIL` from sysexits.h: a temporary failure, worth trying again later.
pub const EX_TEMPFAIL: u8 = 75;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A setting cannot be used (status 2); the message names it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The command line or its input cannot be used, e.g. an unreadable file (status 2).
    #[error("{0}")]
    Usage(String),
    /// Something the command needs is not there yet, e.g. the database cannot be reached
    /// (status 75): the same command may succeed later.
    #[error("{0}")]
    Temporary(String),
    /// Anything else that went wrong while running (status 1).
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Config(_) | Failure::Usage(_) => ExitCode::from(2),
            Failure::Temporary(_) => ExitCode::from(EX_TEMPFAIL),
            Failure::Runtime(_) => ExitCode::FAILURE,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure::Runtime(error.into())
    }
}
