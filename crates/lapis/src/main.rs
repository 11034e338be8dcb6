//! The `lapis` binary: command line, configuration, and the wiring of storage, core
//! and protocol adapters into one server.

mod admin_client;
mod blob;
mod choose_cli;
mod cli;
mod config;
mod eg_cli;
mod eh_cli;
mod endpoints;
mod eventgrid;
mod eventgrid_transport;
mod eventhubs;
mod sb_cli;
mod serve;
mod stores;
mod servicebus;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Sb(args) => sb_cli::run(args),
        cli::Command::Eh(args) => eh_cli::run(args),
        cli::Command::Eg(args) => eg_cli::run(args),
        cli::Command::Choose(args) => choose_cli::run(args),
        cli::Command::ConnectionStrings(args) => config::Settings::resolve(args).map(|s| {
            print!("{}", endpoints::banner(&s));
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lapis: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
