//! `stream-limit-http`: serve (the default) or `migrate`. `--config <file>` names a TOML file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stream_limit_http::{cause_chain, telemetry, Application, Settings};

#[derive(Parser)]
#[command(
    version,
    about = "At most N concurrent video streams per viewer, over HTTP."
)]
struct Cli {
    /// A TOML configuration file (default: $STREAM_LIMIT_CONFIG, else ./stream-limit.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Default)]
enum Command {
    /// Serve the HTTP API (the default).
    #[default]
    Serve,
    /// Apply the database migrations and exit (needs DATABASE_URL). Serving
    /// applies them too; this is for deployments that migrate as a separate step.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => return fail("invalid configuration", &error),
    };
    if let Err(error) = telemetry::init(&settings.log) {
        return fail("could not start logging", error.as_ref());
    }
    match cli.command.unwrap_or_default() {
        Command::Serve => match Application::build(settings).await {
            Ok(app) => match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail("server failed", &error),
            },
            Err(error) => fail("could not start", &error),
        },
        Command::Migrate => match stream_limit_http::store::migrate(&settings).await {
            Ok(applied) => {
                println!("migrations up to date ({applied} applied now)");
                ExitCode::SUCCESS
            }
            Err(error) => fail("migration failed", &error),
        },
    }
}

/// Prints `what: error: cause…` to stderr (logging may not be up yet).
fn fail(what: &str, error: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("stream-limit-http: {what}: {}", cause_chain(error));
    ExitCode::FAILURE
}
