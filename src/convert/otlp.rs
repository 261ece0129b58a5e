//! Resources (rule 14) and the OTLP request that carries converted spans.
//!
//! Grouping into `ResourceSpans` is `opentelemetry-proto`'s own transform, the one the OTLP
//! exporters use, so `convert`'s JSON and what goes over the wire cannot drift apart.

use super::BridgeSpan;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use std::collections::BTreeMap;

/// `[export.resource]` as the converter needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSettings {
    pub service_name: String,
    pub service_name_from_task: bool,
    pub attributes: BTreeMap<String, String>,
}

impl Default for ResourceSettings {
    fn default() -> Self {
        ResourceSettings {
            service_name: "trigger.dev".to_owned(),
            service_name_from_task: false,
            attributes: BTreeMap::new(),
        }
    }
}

impl ResourceSettings {
    /// The `service.name` a span is reported under.
    pub fn service_name_for<'a>(&'a self, task_slug: Option<&'a str>) -> &'a str {
        match task_slug {
            Some(slug) if self.service_name_from_task => slug,
            _ => &self.service_name,
        }
    }

    /// The resource for one service name: the configured attributes plus `service.name`
    /// (which always wins over an attribute of the same key).
    pub fn resource(&self, service_name: &str) -> Resource {
        Resource::builder_empty()
            .with_attributes(
                self.attributes
                    .iter()
                    .filter(|(key, _)| key.as_str() != "service.name")
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .with_service_name(service_name.to_owned())
            .build()
    }

    /// Spans grouped by the resource they belong to, in first-seen order.
    pub fn group(&self, spans: Vec<BridgeSpan>) -> Vec<(Resource, Vec<SpanData>)> {
        let mut groups: Vec<(String, Vec<SpanData>)> = Vec::new();
        for span in spans {
            let name = self.service_name_for(span.task_slug.as_deref());
            match groups.iter_mut().find(|(group, _)| group == name) {
                Some((_, members)) => members.push(span.data),
                None => groups.push((name.to_owned(), vec![span.data])),
            }
        }
        groups
            .into_iter()
            .map(|(name, members)| (self.resource(&name), members))
            .collect()
    }
}

/// One OTLP request holding every span, grouped by resource and scope.
pub fn export_request(spans: Vec<BridgeSpan>, settings: &ResourceSettings) -> ExportTraceServiceRequest {
    let resource_spans = settings
        .group(spans)
        .into_iter()
        .flat_map(|(resource, members)| {
            group_spans_by_resource_and_scope(members, &ResourceAttributesWithSchema::from(&resource))
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}
