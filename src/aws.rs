//! AWS clients, built in one place from the standard configuration chain (credentials, AWS_REGION,
//! AWS_PROFILE, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>) and passed to whoever needs them.

//! Without the `aws` cargo feature, [`Aws`] is a type with no values: nothing that needs AWS can
//! be reached, and [`load_for`] says which feature the build lacks.

#[cfg(feature = "aws")]
use aws_config::{BehaviorVersion, Region, SdkConfig};
#[cfg(feature = "aws")]
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
#[cfg(feature = "aws")]
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use crate::error::{Error, Result};

/// How to reach AWS; all optional, the defaults follow the AWS conventions.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Endpoint for S3-compatible stores (`--s3-endpoint`); path-style addressing is used with it.
    pub s3_endpoint: Option<String>,
    /// Use virtual-hosted-style addressing even with a custom endpoint.
    pub s3_virtual_hosted: bool,
}

/// The AWS clients for `what` (an S3 location, an SNS target, a queue…), or, in a build without
/// the `aws` feature, an error saying so.
pub async fn load_for(what: &str, options: &AwsOptions) -> Result<Aws> {
    #[cfg(feature = "aws")]
    {
        let _ = what;
        Ok(Aws::load(options).await)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = options;
        Err(without_aws(what))
    }
}

/// The error for using `what` in a build without the `aws` feature.
pub fn without_aws(what: &str) -> Error {
    Error::Config(format!(
        "{what} needs AWS, but this stockload was built without the `aws` feature \
         (cargo build --features aws)"
    ))
}

/// In a build without the `aws` feature: no AWS client can exist.
#[cfg(not(feature = "aws"))]
#[derive(Clone, Debug)]
pub enum Aws {}

/// The loaded AWS configuration and the S3 client every S3 location shares.
#[cfg(feature = "aws")]
#[derive(Clone, Debug)]
pub struct Aws {
    /// The shared SDK configuration (region, credentials, endpoint overrides).
    pub config: SdkConfig,
    /// The S3 client.
    pub s3: aws_sdk_s3::Client,
}

#[cfg(feature = "aws")]
impl Aws {
    /// Loads the standard configuration chain. When no region is configured anywhere,
    /// us-east-1 is used.
    pub async fn load(options: &AwsOptions) -> Aws {
        Aws::from_loader(aws_config::defaults(BehaviorVersion::latest()), options).await
    }

    /// Loads from a prepared loader (tests point one at an emulator with fixed credentials).
    pub async fn from_loader(loader: aws_config::ConfigLoader, options: &AwsOptions) -> Aws {
        // ring rather than aws-lc: no C/CMake build, and it cross-compiles for old glibc.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut config = loader.http_client(http).load().await;
        if config.region().is_none() {
            config = config
                .into_builder()
                .region(Region::new("us-east-1"))
                .build();
        }
        let s3 = s3_client(&config, options);
        Aws { config, s3 }
    }

    /// An SNS client on the same configuration.
    pub fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.config)
    }

    /// An SQS client on the same configuration.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    /// A Data Pipeline client on the same configuration.
    pub fn datapipeline(&self) -> aws_sdk_datapipeline::Client {
        aws_sdk_datapipeline::Client::new(&self.config)
    }
}

#[cfg(feature = "aws")]
fn s3_client(config: &SdkConfig, options: &AwsOptions) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(config);
    let env_endpoint = config.endpoint_url().is_some()
        || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if let Some(endpoint) = &options.s3_endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    if options.s3_endpoint.is_some() || env_endpoint {
        // S3-compatible stores and emulators rarely have wildcard DNS for virtual-hosted buckets,
        // and several do not accept the SDK's default aws-chunked CRC uploads.
        builder = builder
            .force_path_style(!options.s3_virtual_hosted)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// An AWS SDK error as returned by every client's `send()`.
#[cfg(feature = "aws")]
pub type SdkFailure<E> = aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>;

/// The error for a failed call of `service`: the short description of [`describe_sdk_error`] for
/// users, the SDK's error kept as its source.
#[cfg(feature = "aws")]
pub fn aws_error<E>(service: &'static str, action: impl Into<String>, err: SdkFailure<E>) -> Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    Error::Aws {
        service,
        action: action.into(),
        reason: describe_sdk_error(&err),
        source: Some(Box::new(err)),
    }
}

/// The short, credential-free description of an SDK error: the service's error code and message
/// when it answered (NoSuchBucket, AccessDenied, ...), else the transport problem.
#[cfg(feature = "aws")]
pub fn describe_sdk_error<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            match (inner.code(), inner.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => format!("{inner} (HTTP {})", service.raw().status().as_u16()),
            }
        }
        SdkError::DispatchFailure(failure) => {
            if failure.is_io() {
                "cannot reach the endpoint (connection failed)".to_string()
            } else if failure.is_timeout() {
                "the request timed out".to_string()
            } else {
                format!("request could not be sent: {:?}", failure.as_other())
            }
        }
        SdkError::TimeoutError(_) => "the request timed out".to_string(),
        SdkError::ConstructionFailure(_) => "the request could not be built".to_string(),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}
