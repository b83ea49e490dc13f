/// What was built: reported as `sse_gateway_build_info{version}` and by `sse-gateway --version`.
public enum GatewayBuild {
    /// Raised with each release (semantic versioning).
    public static let version = "0.1.0"
}
