//! `logs`: the logs service's paged `logs` route, or the NDJSON `logs_stream` with `-f`.

use std::io::Write;

use futures::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::args::LogsArgs;
use super::client::{describe, status_error};
use super::ctx::Ctx;
use super::error::CliError;
use super::output::{self, Style};
use jobs_core::wire::LogEntry;

fn query(a: &LogsArgs, paged: bool) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(n) = a.last {
        q.push(("lines", n.to_string()));
    }
    if let Some(s) = &a.since {
        q.push(("since", s.clone()));
    }
    if let Some(u) = &a.until {
        q.push(("until", u.clone()));
    }
    if paged {
        q.push(("direction", "newest_first".into()));
    }
    serde_urlencoded::to_string(&q).unwrap_or_default()
}

fn line_of(entry: &LogEntry, color: bool) -> String {
    let container = &entry.container;
    let mut s = format!(
        "{} {}",
        output::paint(color, Style::Dim, &entry.datetime),
        output::paint(color, Style::Cyan, &format!("[{}]", entry.pod))
    );
    if !container.is_empty() {
        s.push_str(&format!(
            " {}",
            output::paint(color, Style::Dim, &format!("[{container}]"))
        ));
    }
    s.push(' ');
    s.push_str(&entry.message);
    s
}

fn print_entry(ctx: &Ctx, entry: &Value, color: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if ctx.json {
        writeln!(out, "{entry}")
    } else {
        let typed = LogEntry::deserialize(entry).unwrap_or_default();
        writeln!(out, "{}", line_of(&typed, color))
    };
}

/// Resolves a `next.url` relative reference against the current URL.
fn next_url(current: &str, next: &str) -> String {
    if next.starts_with("https://") {
        return next.to_string();
    }
    let base = current.split('?').next().unwrap_or(current);
    if let Some(q) = next.strip_prefix('?') {
        return format!("{base}?{q}");
    }
    match base.rfind('/') {
        Some(i) => format!("{}/{}", &base[..i], next.trim_start_matches("./")),
        None => next.to_string(),
    }
}

pub async fn logs(ctx: &Ctx, a: &LogsArgs) -> Result<(), CliError> {
    let color = output::stdout_color();
    if a.follow {
        let url = ctx
            .api
            .logs_url(&format!("job/{}/logs_stream?{}", a.name, query(a, false)));
        let url = url.trim_end_matches('?').to_string();
        let resp = ctx
            .api
            .send(
                Method::GET,
                &url,
                None,
                Some(std::time::Duration::from_secs(365 * 86400)),
            )
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(status_error(status, &text));
        }
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| CliError::Server(format!("the log stream broke: {}", describe(&e))))?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                emit_line(ctx, &line, color);
            }
        }
        if !buf.is_empty() {
            emit_line(ctx, &buf, color);
        }
        return Ok(());
    }
    let mut url = ctx
        .api
        .logs_url(&format!("job/{}/logs?{}", a.name, query(a, true)));
    let mut entries: Vec<Value> = Vec::new();
    for _page in 0..1000 {
        let reply = ctx.api.call(Method::GET, &url, None).await?;
        let data = reply.get("data").cloned().unwrap_or(Value::Null);
        if let Some(list) = data.get("logs").and_then(Value::as_array) {
            entries.extend(list.iter().cloned());
        }
        match data
            .get("next")
            .and_then(|n| n.get("url"))
            .and_then(Value::as_str)
        {
            Some(n) => {
                let next = next_url(&url, n);
                if next == url {
                    break;
                }
                url = next;
            }
            None => break,
        }
    }
    // the service sends newest first; print in time order
    for e in entries.iter().rev() {
        print_entry(ctx, e, color);
    }
    Ok(())
}

fn emit_line(ctx: &Ctx, line: &[u8], color: bool) {
    let text = String::from_utf8_lossy(line);
    let t = text.trim();
    if t.is_empty() {
        return;
    }
    match serde_json::from_str::<Value>(t) {
        Ok(v) if v.is_object() => print_entry(ctx, &v, color),
        _ => println!("{t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_urls_resolve_like_urljoin() {
        let cur = "https://h/logs/v1/tool/t/job/j/logs?lines=3&direction=newest_first";
        assert_eq!(
            next_url(cur, "?cursor=2"),
            "https://h/logs/v1/tool/t/job/j/logs?cursor=2"
        );
        assert_eq!(
            next_url(cur, "logs?cursor=2"),
            "https://h/logs/v1/tool/t/job/j/logs?cursor=2"
        );
    }
}
