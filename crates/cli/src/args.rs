//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "toolforge-jobs",
    version,
    about = "Run and manage jobs of a Toolforge tool",
    after_help = "Exit codes: 0 ok; 1 user error (refused request, bad input, failed job under --wait); \
2 server or connection error (or bad command-line usage).\n\
Configuration: $KUBECONFIG or ~/.kube/config (certificate, tool), the toolforge YAML files \
(api_gateway.url, jobs.jobs_endpoint), env TOOL_TOOLFORGE_API_URL; flags win."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Jobs API gateway URL (default: api_gateway.url of the toolforge config)
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// CA bundle (PEM) to verify the server with (default: $REQUESTS_CA_BUNDLE, else the system's)
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) (default: from the kubeconfig)
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Client key (PEM) (default: from the kubeconfig)
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Kubeconfig to read (default: $KUBECONFIG, else ~/.kube/config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Tool name (default: the kubeconfig namespace without 'tool-', else the certificate CN)
    #[arg(long, global = true, value_name = "TOOL")]
    pub tool: Option<String>,
    /// Print the server's replies as JSON (for scripts)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print each request on stderr
    #[arg(long, global = true, env = "TOOLFORGE_DEBUG", value_parser = clap::builder::FalseyValueParser::new())]
    pub debug: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a new job (one-off, scheduled or continuous)
    Run(Box<RunArgs>),
    /// Show everything about one job
    Show { name: String },
    /// List the tool's jobs
    List {
        /// normal, long, name (bare names) or json
        #[arg(short, long, value_enum, default_value_t = ListFormat::Normal)]
        output: ListFormat,
        /// Same as -o long (deprecated)
        #[arg(short, long, hide = true)]
        long: bool,
    },
    /// Delete a job
    Delete { name: String },
    /// Delete all the tool's jobs
    Flush {
        /// Do not ask for confirmation
        #[arg(short, long)]
        yes: bool,
    },
    /// Restart a job (continuous: new pods; scheduled: run now)
    Restart { name: String },
    /// Show a job's logs
    Logs(LogsArgs),
    /// List the container images jobs can use
    Images,
    /// Show the tool's quotas and what is used
    Quota,
    /// Create or update the jobs described in a YAML file (never deletes)
    Load(LoadArgs),
    /// Print the tool's jobs as a YAML file `load` accepts
    Dump {
        /// Write to FILE instead of stdout
        #[arg(short = 'f', long = "to-file", value_name = "FILE")]
        to_file: Option<PathBuf>,
    },
    /// Print a shell completion script
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Normal,
    Long,
    Name,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Emails {
    None,
    All,
    Onfinish,
    Onfailure,
}

impl Emails {
    pub fn as_str(self) -> &'static str {
        match self {
            Emails::None => "none",
            Emails::All => "all",
            Emails::Onfinish => "onfinish",
            Emails::Onfailure => "onfailure",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mount {
    All,
    None,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Job name
    pub name: String,
    /// Command to run
    #[arg(long)]
    pub command: String,
    /// Container image (see `toolforge-jobs images`)
    #[arg(long)]
    pub image: String,
    /// Run on a cron schedule ("*/5 * * * *", "@daily", …)
    #[arg(long, group = "kind", value_name = "CRON")]
    pub schedule: Option<String>,
    /// Keep the job running (restart it when it exits)
    #[arg(long, group = "kind")]
    pub continuous: bool,
    /// Wait for a one-off job to finish, at most SECONDS (default 600)
    #[arg(long, group = "kind", value_name = "SECONDS", num_args = 0..=1, default_missing_value = "600")]
    pub wait: Option<u64>,
    /// Retry a failed job this many times
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=5))]
    pub retry: Option<u8>,
    /// Memory limit, e.g. 512Mi, 2Gi
    #[arg(long)]
    pub mem: Option<String>,
    /// CPU limit, e.g. 0.5, 1
    #[arg(long)]
    pub cpu: Option<String>,
    /// When to send emails
    #[arg(long, value_enum)]
    pub emails: Option<Emails>,
    /// Mount the tool's NFS storage
    #[arg(long, value_enum)]
    pub mount: Option<Mount>,
    /// Write stdout/stderr to files in the tool's home
    #[arg(long, conflicts_with = "no_filelog")]
    pub filelog: bool,
    /// Don't write stdout/stderr to files
    #[arg(long)]
    pub no_filelog: bool,
    /// File for stdout (default: <name>.out)
    #[arg(short = 'o', long, value_name = "PATH")]
    pub filelog_stdout: Option<String>,
    /// File for stderr (default: <name>.err)
    #[arg(short = 'e', long, value_name = "PATH")]
    pub filelog_stderr: Option<String>,
    /// Scheduled jobs: seconds a run may take
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
    /// Continuous jobs: number of pods
    #[arg(long)]
    pub replicas: Option<i32>,
    /// Continuous jobs: port the job listens on (PORT or PORT/tcp|udp)
    #[arg(short = 'p', long)]
    pub port: Option<String>,
    /// Continuous jobs: health-check command
    #[arg(long, value_name = "CMD", conflicts_with = "health_check_http")]
    pub health_check_script: Option<String>,
    /// Continuous jobs: health-check HTTP path (needs --port)
    #[arg(long, value_name = "PATH")]
    pub health_check_http: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub name: String,
    /// Keep printing new lines as they come
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(short = 'l', long = "last", value_name = "N")]
    pub last: Option<u64>,
    /// Only lines since TIME (ISO 8601 or a duration like 1h30m; the server's default is
    /// 1h); refused for a job with file logging, whose lines carry no time
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines until TIME (refused for file logs, like --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// YAML file: a list of jobs (name, command, image, schedule, continuous, …)
    pub file: PathBuf,
    /// Only this job of the file
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// Print what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
}
