//! One function per subcommand.

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::CommandFactory;
use reqwest::Method;
use serde_json::Value;

use super::args::{Cli, Command, ListFormat, Mount, RunArgs};
use super::client::Api;
use super::config::{self, Overrides};
use super::jobs::{self, JobSpec};
use super::output::{self, Cell, Spinner, Style};
use super::{load, logs, print_warning, CliError};

pub struct Ctx {
    pub api: Api,
    pub json: bool,
}

impl Ctx {
    /// Prints a success reply: as JSON with `--json`, else its info (stdout) and warning
    /// (stderr) messages.
    pub fn report(&self, reply: &Value) {
        if self.json {
            println!("{}", pretty(reply));
            return;
        }
        print_messages(reply);
    }
}

/// The server's `messages.<kind>` of a reply ("info", "warning", ...).
pub fn messages<'a>(reply: &'a Value, kind: &str) -> Vec<&'a str> {
    reply
        .get("messages")
        .and_then(|m| m.get(kind))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub fn print_messages(reply: &Value) {
    for i in messages(reply, "info") {
        println!("{i}");
    }
    for w in messages(reply, "warning") {
        print_warning(w);
    }
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn field<'a>(reply: &'a Value, key: &str) -> Result<&'a Value, CliError> {
    reply.get(key).ok_or_else(|| {
        CliError::Server(format!(
            "unexpected reply from the jobs API: no '{key}' field"
        ))
    })
}

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
                    let job = field(&reply, "job")?;
                    status = jobs::status_short(job);
                    match jobs::status_key(job).as_str() {
                        "succeeded" => {
                            spinner.clear();
                            println!("job '{name}' completed");
                            return Ok(());
                        }
                        "failed" => {
                            spinner.clear();
                            print!(
                                "{}",
                                jobs::show_text(job, output::width(), output::stdout_color())
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
                if let Some(job) = reply.get("job") {
                    print!(
                        "{}",
                        jobs::show_text(job, output::width(), output::stdout_color())
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

async fn show(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let reply = ctx.api.get(&format!("jobs/{name}")).await?;
    if ctx.json {
        println!("{}", pretty(field(&reply, "job")?));
        return Ok(());
    }
    let job = field(&reply, "job")?;
    print!(
        "{}",
        jobs::show_text(job, output::width(), output::stdout_color())
    );
    Ok(())
}

pub async fn current_jobs(ctx: &Ctx, include_unset: bool) -> Result<Vec<Value>, CliError> {
    let reply = ctx
        .api
        .get(&format!(
            "jobs/?include_unset={}",
            if include_unset { "True" } else { "False" }
        ))
        .await?;
    field(&reply, "jobs")?
        .as_array()
        .cloned()
        .ok_or_else(|| CliError::Server("unexpected reply: 'jobs' is not a list".into()))
}

async fn list(ctx: &Ctx, fmt: ListFormat) -> Result<(), CliError> {
    let mut jobs = current_jobs(ctx, true).await?;
    jobs.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    if ctx.json || fmt == ListFormat::Json {
        println!("{}", pretty(&Value::Array(jobs)));
        return Ok(());
    }
    match fmt {
        ListFormat::Name => {
            for j in &jobs {
                if let Some(n) = j["name"].as_str() {
                    println!("{n}");
                }
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
        if !super::stdin_is_terminal() {
            return Err(CliError::User(
                "flush deletes every job of the tool; pass --yes to confirm (stdin is not a terminal, so I can't ask)".into(),
            ));
        }
        let jobs = current_jobs(ctx, true).await?;
        if jobs.is_empty() {
            println!("no jobs to delete");
            return Ok(());
        }
        let names: Vec<&str> = jobs.iter().filter_map(|j| j["name"].as_str()).collect();
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
    let images = field(&reply, "images")?;
    if ctx.json {
        println!("{}", pretty(images));
        return Ok(());
    }
    let rows: Vec<Vec<Cell>> = images
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    vec![
                        Cell::styled(i["shortname"].as_str().unwrap_or(""), Some(Style::Cyan)),
                        Cell::plain(i["image"].as_str().unwrap_or("")),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
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

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn quota(ctx: &Ctx) -> Result<(), CliError> {
    let reply = ctx.api.get("quotas/").await?;
    let quota = field(&reply, "quota")?;
    if ctx.json {
        println!("{}", pretty(quota));
        return Ok(());
    }
    let color = output::stdout_color();
    let cats = quota
        .get("categories")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut first = true;
    for c in cats {
        let items = c["items"].as_array().cloned().unwrap_or_default();
        let with_used = items.first().is_some_and(|i| i.get("used").is_some());
        if !first {
            println!();
        }
        first = false;
        println!(
            "{}",
            output::paint(color, Style::Bold, c["name"].as_str().unwrap_or("Quota"))
        );
        let rows: Vec<Vec<Cell>> = items
            .iter()
            .map(|i| {
                let mut r = vec![
                    Cell::plain(text(&i["name"])),
                    Cell::plain(text(&i["limit"])),
                ];
                if with_used {
                    r.push(Cell::plain(text(&i["used"])));
                }
                r
            })
            .collect();
        let headers: &[&str] = if with_used {
            &["  Resource", "Limit", "Used"]
        } else {
            &["  Resource", "Limit"]
        };
        let indented: Vec<Vec<Cell>> = rows
            .into_iter()
            .map(|mut r| {
                if let Some(first) = r.first_mut() {
                    first.text = format!("  {}", first.text);
                }
                r
            })
            .collect();
        print!(
            "{}",
            output::table(headers, &indented, &[0], output::width(), color)
        );
    }
    Ok(())
}
