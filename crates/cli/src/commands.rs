//! One function per subcommand.

use std::io::{BufRead, Write};

use clap::CommandFactory;
use reqwest::Method;
use serde_json::Value;

use super::args::{Cli, Command, ListFormat, Mount, RunArgs};
use super::client::Api;
use super::config::{self, Overrides};
use super::ctx::{pretty, typed, Ctx};
use super::error::{print_warning, CliError};
use super::jobs::{self, JobSpec};
use super::output::{self, Cell, Style};
use super::wait::wait_for;
use super::{load, logs};
use jobs_core::wire::v1::{ImagesReply, JobReply, QuotaReply};
use jobs_core::wire::QuotaValue;

pub async fn dispatch(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "toolforge-jobs", &mut std::io::stdout());
        return Ok(());
    }
    let g = &cli.global;
    let settings = config::load(&Overrides {
        url: g.url.clone(),
        ca: g.ca.clone(),
        cert: g.cert.clone(),
        key: g.key.clone(),
        tool: g.tool.clone(),
        kubeconfig: g.kubeconfig.clone(),
    })?;
    let ctx = Ctx {
        api: Api::new(settings, g.debug)?,
        json: g.json,
    };
    match cli.command {
        Command::Run(a) => run(&ctx, *a).await,
        Command::Show { name } => show(&ctx, &name).await,
        Command::List { output, long } => {
            let fmt = if long && output == ListFormat::Normal {
                print_warning("-l/--long is deprecated; use -o long");
                ListFormat::Long
            } else {
                output
            };
            list(&ctx, fmt).await
        }
        Command::Delete { name } => {
            let reply = ctx
                .api
                .call(
                    Method::DELETE,
                    &ctx.api.jobs_url(&format!("jobs/{name}")),
                    None,
                )
                .await?;
            ctx.report(&reply);
            Ok(())
        }
        Command::Flush { yes } => flush(&ctx, yes).await,
        Command::Restart { name } => {
            let reply = ctx
                .api
                .call(
                    Method::POST,
                    &ctx.api.jobs_url(&format!("jobs/{name}/restart")),
                    None,
                )
                .await?;
            ctx.report(&reply);
            Ok(())
        }
        Command::Logs(a) => logs::logs(&ctx, &a).await,
        Command::Images => images(&ctx).await,
        Command::Quota => quota(&ctx).await,
        Command::Load(a) => load::load(&ctx, &a).await,
        Command::Dump { to_file } => load::dump(&ctx, to_file.as_deref()).await,
        Command::Completions { .. } => Ok(()),
    }
}

pub fn spec_of(a: &RunArgs) -> JobSpec {
    JobSpec {
        name: a.name.clone(),
        command: Some(a.command.clone()),
        image: Some(a.image.clone()),
        schedule: a.schedule.clone(),
        continuous: a.continuous,
        retry: a.retry,
        mem: a.mem.clone(),
        cpu: a.cpu.clone(),
        emails: a.emails.map(|e| e.as_str().to_string()),
        mount: a.mount.map(|m| match m {
            Mount::All => "all".to_string(),
            Mount::None => "none".to_string(),
        }),
        filelog: if a.no_filelog {
            Some(false)
        } else if a.filelog {
            Some(true)
        } else {
            None
        },
        filelog_stdout: a.filelog_stdout.clone(),
        filelog_stderr: a.filelog_stderr.clone(),
        timeout: a.timeout,
        replicas: a.replicas,
        port: a.port.clone(),
        health_check_script: a.health_check_script.clone(),
        health_check_http: a.health_check_http.clone(),
    }
}

async fn run(ctx: &Ctx, a: RunArgs) -> Result<(), CliError> {
    let spec = spec_of(&a);
    spec.check()?;
    let reply = ctx
        .api
        .call(Method::POST, &ctx.api.jobs_url("jobs/"), Some(&spec.body()))
        .await?;
    ctx.report(&reply);
    if let Some(secs) = a.wait {
        wait_for(ctx, &spec.name, secs).await?;
    }
    Ok(())
}

async fn show(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let reply = ctx.api.get(&format!("jobs/{name}")).await?;
    let shown: JobReply = typed(&reply)?;
    if ctx.json {
        println!("{}", pretty(&reply["job"]));
        return Ok(());
    }
    print!(
        "{}",
        jobs::show_text(&shown.job, output::width(), output::stdout_color())
    );
    Ok(())
}

async fn list(ctx: &Ctx, fmt: ListFormat) -> Result<(), CliError> {
    let (jobs, raw) = ctx.jobs().await?;
    if ctx.json || fmt == ListFormat::Json {
        println!("{}", pretty(&Value::Array(raw)));
        return Ok(());
    }
    match fmt {
        ListFormat::Name => {
            for j in jobs.iter().filter(|j| !j.name.is_empty()) {
                println!("{}", j.name);
            }
        }
        _ if jobs.is_empty() => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                eprintln!("no jobs");
            }
        }
        f => print!(
            "{}",
            jobs::list_table(
                &jobs,
                f == ListFormat::Long,
                output::width(),
                output::stdout_color()
            )
        ),
    }
    Ok(())
}

async fn flush(ctx: &Ctx, yes: bool) -> Result<(), CliError> {
    if !yes {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(CliError::User(
                "flush deletes every job of the tool; pass --yes to confirm (stdin is not a terminal, so I can't ask)".into(),
            ));
        }
        let (jobs, _) = ctx.jobs().await?;
        if jobs.is_empty() {
            println!("no jobs to delete");
            return Ok(());
        }
        let names: Vec<&str> = jobs
            .iter()
            .map(|j| j.name.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        let color = output::stderr_color();
        eprintln!(
            "This deletes all {} job(s) of tool '{}': {}",
            names.len(),
            ctx.api.settings.tool,
            names.join(", ")
        );
        eprint!(
            "{} ",
            output::paint(color, Style::Bold, "Delete them all? [y/N]")
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| CliError::User(format!("reading the answer: {e}")))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("aborted; nothing was deleted");
            return Err(CliError::Exit(1));
        }
    }
    let reply = ctx
        .api
        .call(Method::DELETE, &ctx.api.jobs_url("jobs/"), None)
        .await?;
    ctx.report(&reply);
    Ok(())
}

async fn images(ctx: &Ctx) -> Result<(), CliError> {
    let reply = ctx.api.get("images/").await?;
    let listed: ImagesReply = typed(&reply)?;
    if ctx.json {
        println!("{}", pretty(&reply["images"]));
        return Ok(());
    }
    let rows: Vec<Vec<Cell>> = listed
        .images
        .iter()
        .map(|i| {
            vec![
                Cell::styled(i.shortname.as_str(), Some(Style::Cyan)),
                Cell::plain(i.image.as_str()),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["Short name", "Container image URL"],
            &rows,
            &[1],
            output::width(),
            output::stdout_color()
        )
    );
    Ok(())
}

fn text(v: &Option<QuotaValue>) -> String {
    v.as_ref().map(QuotaValue::to_string).unwrap_or_default()
}

async fn quota(ctx: &Ctx) -> Result<(), CliError> {
    let reply = ctx.api.get("quotas/").await?;
    let quota: QuotaReply = typed(&reply)?;
    if ctx.json {
        println!("{}", pretty(&reply["quota"]));
        return Ok(());
    }
    let color = output::stdout_color();
    let mut first = true;
    for c in &quota.quota.categories {
        let with_used = c.items.first().is_some_and(|i| i.used.is_some());
        if !first {
            println!();
        }
        first = false;
        let title = if c.name.is_empty() { "Quota" } else { &c.name };
        println!("{}", output::paint(color, Style::Bold, title));
        let rows: Vec<Vec<Cell>> = c
            .items
            .iter()
            .map(|i| {
                let mut r = vec![
                    Cell::plain(format!("  {}", i.name)),
                    Cell::plain(text(&i.limit)),
                ];
                if with_used {
                    r.push(Cell::plain(text(&i.used.clone().flatten())));
                }
                r
            })
            .collect();
        let headers: &[&str] = if with_used {
            &["  Resource", "Limit", "Used"]
        } else {
            &["  Resource", "Limit"]
        };
        print!(
            "{}",
            output::table(headers, &rows, &[0], output::width(), color)
        );
    }
    Ok(())
}
