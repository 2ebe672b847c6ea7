//! The AWS Lambda entry point (`bootstrap` on provided.al2023): reads its configuration from the
//! environment once, then hands every S3 event to `stockload::trigger::lambda::handle`.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{service_fn, LambdaEvent};
use stockload::aws::{Aws, AwsOptions};
use stockload::trigger::lambda::{handle, LambdaConfig};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // CloudWatch reads JSON lines best; STOCKLOAD_LOG_FORMAT=text switches back.
    stockload::init_tracing(stockload::LogFormat::from_env(stockload::LogFormat::Json));
    let config = LambdaConfig::from_vars(|name| std::env::var(name).ok())?;
    let aws = Aws::load(&AwsOptions::default()).await;
    let (aws, config) = (&aws, &config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        handle(aws, config, &event.payload)
            .await
            .map_err(|err| lambda_runtime::Error::from(err.to_string()))
    }))
    .await
}
