import Dispatch
import Foundation
import GatewayCore
import Logging
import ServiceLifecycle

/// Re-reads the configuration file on SIGHUP. A valid file takes effect for new requests at once; an invalid one is
/// rejected with the same positioned errors as `sse-gateway check`, and the running configuration stays.
public final class ConfigurationReloader: Service, Sendable {
    private let path: String
    private let gateway: Gateway
    private let logger: Logger

    public init(path: String, gateway: Gateway, logger: Logger) {
        self.path = path
        self.gateway = gateway
        self.logger = logger
        gateway.onReloadRequest { [weak self] in
            guard let self else { return "reloader stopped" }
            return await self.reload().map { "\($0)" }
        }
    }

    /// Loads, validates and applies the file; returns the errors if it was rejected.
    @discardableResult
    public func reload() async -> ConfigurationErrors? {
        do {
            let loaded = try GatewayConfiguration.load(path: path)
            try Gateway.validate(loaded)
            try await gateway.reload(configuration: loaded.configuration)
            logger.notice("configuration reloaded", metadata: ["file": "\(path)"])
            gateway.metrics.configReload(succeeded: true)
            return nil
        } catch let errors as ConfigurationErrors {
            gateway.metrics.configReload(succeeded: false)
            logger.error("configuration rejected; keeping the running one", metadata: ["errors": "\(errors)"])
            return errors
        } catch {
            gateway.metrics.configReload(succeeded: false)
            let errors = ConfigurationErrors([
                ConfigurationError(file: path, line: 0, column: 0, keyPath: "", message: "\(error)")
            ])
            logger.error("configuration rejected; keeping the running one", metadata: ["errors": "\(errors)"])
            return errors
        }
    }

    public func run() async throws {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { [self] in Task { _ = await self.reload() } }
        source.resume()
        try? await gracefulShutdown()
        source.cancel()
    }
}
