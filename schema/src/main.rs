use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    schema::commands::run().await
}
