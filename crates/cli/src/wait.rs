//! `--wait`: polls a one-off job until it ends.

use std::time::Duration;

use reqwest::Method;

use super::ctx::{typed, Ctx};
use super::error::CliError;
use super::jobs;
use super::output::{self, Spinner};
use jobs_core::wire::v1::JobReply;

/// Polls a one-off job until it succeeds (Ok), fails (exit 1) or `max_secs` pass (exit 2).
pub async fn wait_for(ctx: &Ctx, name: &str, max_secs: u64) -> Result<(), CliError> {
    let mut spinner = Spinner::new(format!("waiting for job '{name}'"));
    let mut status = String::from("submitted");
    let mut next_poll = Duration::from_millis(500);
    loop {
        if spinner.elapsed() >= next_poll {
            let url = ctx.api.jobs_url(&format!("jobs/{name}"));
            match ctx.api.call(Method::GET, &url, None).await {
                Ok(reply) => {
                    let job = typed::<JobReply>(&reply)?.job;
                    status = jobs::status_short(&job);
                    match job.status.short.as_str() {
                        "succeeded" => {
                            spinner.clear();
                            println!("job '{name}' completed");
                            return Ok(());
                        }
                        "failed" => {
                            spinner.clear();
                            print!(
                                "{}",
                                jobs::show_text(&job, output::width(), output::stdout_color())
                            );
                            return Err(CliError::User(format!("job '{name}' failed")));
                        }
                        _ => {}
                    }
                }
                Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
                    spinner.clear();
                    println!("job '{name}' completed (and already deleted)");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            next_poll = spinner.elapsed() + Duration::from_secs(2);
        }
        if spinner.elapsed() >= Duration::from_secs(max_secs) {
            spinner.clear();
            if let Ok(reply) = ctx.api.get(&format!("jobs/{name}")).await {
                if let Ok(shown) = typed::<JobReply>(&reply) {
                    print!(
                        "{}",
                        jobs::show_text(&shown.job, output::width(), output::stdout_color())
                    );
                }
            }
            return Err(CliError::Server(format!(
                "timed out after {max_secs}s waiting for job '{name}' (last status: {status})"
            )));
        }
        spinner.tick(&status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
