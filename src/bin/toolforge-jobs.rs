//! `toolforge-jobs`: run and manage the jobs of a Toolforge tool through the jobs API.

fn main() {
    std::process::exit(jobs_gateway::cli::main());
}
