//! The second floor for init-time measurements: a lambda_runtime function that loads the AWS
//! config and builds one SDK client (DynamoDB), as every Countersign function must.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let client = &client;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let _ = client;
        Ok::<_, Error>(event.payload)
    }))
    .await
}
