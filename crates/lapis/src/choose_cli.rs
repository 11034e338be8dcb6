//! `lapis choose`: the advisor on the command line. The task comes from flags, from
//! questions in the terminal (`--ask`), or from one of the music-share app's tasks
//! (`--scenario`); the answer is the service, why, why not the others, and this
//! server's connection string with a snippet.

use std::io::{BufRead, Write};

use lapis_core::advisor::{advise, render, Delivery, Kind, Protocol, Task};

use crate::cli::{ChooseArgs, ProtocolArg, ScenarioArg};

fn from_flags(a: &ChooseArgs) -> Task {
    Task {
        kind: if a.event { Kind::Event } else { Kind::Message },
        ordered: a.ordered,
        dedup: a.dedup,
        transactions: a.transactions,
        sessions: a.sessions,
        size_kb: a.size_kb,
        backlog_gb: a.backlog_gb,
        per_second: a.rate,
        streaming: a.streaming,
        handlers: a.handlers,
        delivery: match (a.push, a.pull) {
            (true, _) => Delivery::Push,
            (_, true) => Delivery::Pull,
            _ => Delivery::Either,
        },
        replay: a.replay,
        protocol: match a.protocol {
            ProtocolArg::Any => Protocol::Any,
            ProtocolArg::Http => Protocol::Http,
            ProtocolArg::Amqp => Protocol::Amqp,
            ProtocolArg::Kafka => Protocol::Kafka,
        },
    }
}

fn scenario(s: ScenarioArg) -> Task {
    let name = match s {
        ScenarioArg::Upload => "upload",
        ScenarioArg::Comment => "comment",
        ScenarioArg::TrackPublished => "track-published",
        ScenarioArg::Plays => "plays",
    };
    lapis_core::advisor::scenario(name).expect("every --scenario is one of the music-share tasks")
}

/// Asks each question on stderr and reads the answer from stdin (empty: the default).
fn ask(input: &mut dyn BufRead) -> anyhow::Result<Task> {
    let mut line = |question: &str| -> anyhow::Result<String> {
        eprint!("{question} ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        input.read_line(&mut answer)?;
        Ok(answer.trim().to_ascii_lowercase())
    };
    let yes = |a: &str| a.starts_with('y');
    let number = |a: &str, default: f64| a.parse::<f64>().unwrap_or(default);
    let kind = if line("Is it an event (something happened; the sender expects nothing) or a message (work the sender expects done)? [event/MESSAGE]")?.starts_with('e') { Kind::Event } else { Kind::Message };
    let ordered = yes(&line("Must items be handled in the order they were sent? [y/N]")?);
    let dedup = yes(&line("Must a retried send be stored only once? [y/N]")?);
    let transactions = yes(&line("Must several sends or settlements commit together? [y/N]")?);
    let sessions = yes(&line("Must related items go to one consumer at a time (sessions)? [y/N]")?);
    let size_kb = number(&line("Typical size of one item, in KB? [1]")?, 1.0) as u64;
    let backlog_gb = number(&line("Most that may wait unprocessed, in GB? [1]")?, 1.0);
    let per_second = number(&line("Items per second at peak? [10]")?, 10.0) as u64;
    let streaming = yes(&line("Is it a continuous stream (telemetry, clicks, logs)? [y/N]")?);
    let handlers = number(&line("How many independent handlers each need every item? [1]")?, 1.0) as u32;
    let delivery = Delivery::from_word(&line("Should the service call the handlers (push) or should they ask (pull)? [push/pull/EITHER]")?);
    let replay = yes(&line("Must consumers be able to read again what they read? [y/N]")?);
    let protocol = Protocol::from_word(&line("A protocol the clients must speak? [http/amqp/kafka/ANY]")?);
    Ok(Task { kind, ordered, dedup, transactions, sessions, size_kb, backlog_gb, per_second, streaming, handlers, delivery, replay, protocol })
}

pub fn run(a: ChooseArgs) -> anyhow::Result<()> {
    let task = match (a.scenario, a.ask) {
        (Some(s), _) => scenario(s),
        (None, true) => ask(&mut std::io::stdin().lock())?,
        (None, false) => from_flags(&a),
    };
    let advice = advise(&task);
    let serve = crate::cli::ServeArgs::for_config(a.config.clone());
    let settings = crate::config::Settings::resolve(serve)?;
    let endpoints = crate::endpoints::advisor_endpoints(&settings);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "task": task, "advice": advice }))?);
    } else {
        print!("{}", render::text(&advice, &endpoints));
    }
    Ok(())
}
