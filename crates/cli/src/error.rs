//! What can go wrong, the exit code it gives, and how it is told to the user.

use super::output;

/// A failure, and the exit code it gives.
#[derive(Debug)]
pub enum CliError {
    /// Bad input or configuration on the user's side: exit 1.
    User(String),
    /// The API refused the request (4xx): exit 1.
    Api { status: u16, message: String },
    /// The server failed or could not be reached: exit 2.
    Server(String),
    /// Already reported to the user; just exit with this code.
    Exit(i32),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::User(_) | CliError::Api { .. } => 1,
            CliError::Server(_) => 2,
            CliError::Exit(c) => *c,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CliError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::User(m) | CliError::Server(m) => f.write_str(m),
            CliError::Api { message, .. } => f.write_str(message),
            CliError::Exit(c) => write!(f, "exit {c}"),
        }
    }
}

/// Prints `error: …` on stderr (red on a terminal).
pub fn print_error(e: &CliError) {
    if matches!(e, CliError::Exit(_)) {
        return;
    }
    let color = output::stderr_color();
    eprintln!("{} {e}", output::paint(color, output::Style::Red, "error:"));
}

pub fn print_warning(text: &str) {
    let color = output::stderr_color();
    eprintln!(
        "{} {text}",
        output::paint(color, output::Style::Yellow, "warning:")
    );
}
