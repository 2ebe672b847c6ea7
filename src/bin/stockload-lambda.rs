//! The AWS Lambda entry point (`bootstrap` on provided.al2023): reads its configuration from the
//! environment once, then hands every S3 event to `stockload::trigger::lambda::handle`. Logs are
//! JSON lines by default (CloudWatch); `STOCKLOAD_LOG_FORMAT=text` switches back.

use std::process::ExitCode;

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{service_fn, LambdaEvent};
use stockload::aws::{Aws, AwsOptions};
use stockload::trigger::lambda::{handle_until, LambdaConfig};
use stockload::LogFormat;

#[tokio::main]
async fn main() -> ExitCode {
    stockload::init_tracing(LogFormat::from_env(LogFormat::Json));
    // Boxed: the handler's future is deep, and a box keeps main's own future small.
    match Box::pin(serve()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Logged, not printed: stderr stays one JSON object per line.
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    let config = LambdaConfig::from_vars(|name| std::env::var(name).ok())?;
    let aws = Aws::load(&AwsOptions::default()).await;
    let (aws, config) = (&aws, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        // The context's deadline: auto mode weighs its estimate against the time left.
        handle_until(aws, config, &event.payload, event.context.deadline())
            .await
            .map_err(|err| lambda_runtime::Error::from(err.to_string()))
    }))
    .await
}
