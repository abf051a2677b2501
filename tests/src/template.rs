//! Test resources come from `infra/template.yaml`, the single source of the deployment: the
//! DynamoDB table is created from the template's own definition.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use serde_yaml_ng::Value;

pub const TEMPLATE: &str = include_str!("../../infra/template.yaml");

/// The whole template (intrinsics such as `!GetAtt` are tagged values).
pub fn template() -> Value {
    serde_yaml_ng::from_str(TEMPLATE).expect("infra/template.yaml parses")
}

/// The `Table` resource's properties.
pub fn table_properties() -> Value {
    template()["Resources"]["Table"]["Properties"].clone()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v:?}")).to_string()
}

fn key_schema(v: &Value) -> Vec<KeySchemaElement> {
    v.as_sequence()
        .expect("KeySchema")
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(text(&k["AttributeName"]))
                .key_type(KeyType::from(text(&k["KeyType"]).as_str()))
                .build()
                .expect("key")
        })
        .collect()
}

/// (index name, partition attribute, sort attribute) for every GSI in the template.
pub fn template_indexes() -> Vec<(String, String, String)> {
    table_properties()["GlobalSecondaryIndexes"]
        .as_sequence()
        .expect("GlobalSecondaryIndexes")
        .iter()
        .map(|g| {
            let keys = key_schema(&g["KeySchema"]);
            (text(&g["IndexName"]), keys[0].attribute_name().to_string(), keys[1].attribute_name().to_string())
        })
        .collect()
}

/// Creates `table` exactly as the template defines it.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) {
    let props = table_properties();
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::from(text(&props["BillingMode"]).as_str()))
        .set_key_schema(Some(key_schema(&props["KeySchema"])));
    for a in props["AttributeDefinitions"].as_sequence().expect("AttributeDefinitions") {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(&a["AttributeName"]))
                .attribute_type(ScalarAttributeType::from(text(&a["AttributeType"]).as_str()))
                .build()
                .expect("attribute"),
        );
    }
    for g in props["GlobalSecondaryIndexes"].as_sequence().expect("GlobalSecondaryIndexes") {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(text(&g["IndexName"]))
                .set_key_schema(Some(key_schema(&g["KeySchema"])))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(text(&g["Projection"]["ProjectionType"]).as_str()))
                        .build(),
                )
                .build()
                .expect("index"),
        );
    }
    request.send().await.expect("create table from the template");
}
