//! Business keys: the attributes that identify what a process is about (`order.id`,
//! `merchant.id`). By default every attribute whose name ends in `.id` outside the
//! OpenTelemetry semantic-convention namespaces; attributes copied from W3C baggage are
//! ordinary attributes by then, so they count too.

/// Namespaces of the OpenTelemetry semantic conventions, sorted (for reading): their `*.id` attributes
/// (`host.id`, `messaging.message.id`, `session.id`, ...) identify infrastructure, not
/// business objects.
const SEMCONV_NAMESPACES: &[&str] = &[
    "android",
    "app",
    "artifact",
    "aws",
    "az",
    "azure",
    "browser",
    "cassandra",
    "cicd",
    "client",
    "cloud",
    "cloudevents",
    "cloudfoundry",
    "code",
    "container",
    "cpu",
    "cpython",
    "db",
    "deployment",
    "destination",
    "device",
    "disk",
    "dns",
    "dotnet",
    "elasticsearch",
    "enduser",
    "error",
    "event",
    "exception",
    "faas",
    "feature_flag",
    "file",
    "gcp",
    "gen_ai",
    "geo",
    "go",
    "graphql",
    "heroku",
    "host",
    "http",
    "hw",
    "ios",
    "jvm",
    "k8s",
    "linux",
    "log",
    "mainframe",
    "message",
    "messaging",
    "net",
    "network",
    "nodejs",
    "oci",
    "openai",
    "opentracing",
    "os",
    "otel",
    "peer",
    "process",
    "profile",
    "rpc",
    "security_rule",
    "server",
    "service",
    "session",
    "signalr",
    "source",
    "system",
    "telemetry",
    "test",
    "thread",
    "tls",
    "url",
    "user",
    "user_agent",
    "v8js",
    "vcs",
    "webengine",
    "zos",
];

/// [`SEMCONV_NAMESPACES`] as a set: every attribute of every span is asked about, and a
/// lookup by hash costs one comparison where a binary search costs seven.
static NAMESPACES: std::sync::LazyLock<threadline_core::hash::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| SEMCONV_NAMESPACES.iter().copied().collect());

/// Whether an attribute is a business key under the default rule.
pub fn is_default_key(name: &str) -> bool {
    if name.len() <= 3 || !name.ends_with(".id") {
        return false;
    }
    let Some((namespace, _)) = name.split_once('.') else { return false };
    !NAMESPACES.contains(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespaces_are_sorted_and_distinct() {
        assert!(SEMCONV_NAMESPACES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn business_keys_by_default() {
        for key in ["order.id", "merchant.id", "shop.cart.id"] {
            assert!(is_default_key(key), "{key}");
        }
        for key in
            ["host.id", "messaging.message.id", "session.id", "id", ".id", "order_id", "k8s.pod.id"]
        {
            assert!(!is_default_key(key), "{key}");
        }
    }
}
