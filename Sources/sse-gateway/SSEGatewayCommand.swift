import ArgumentParser
import Foundation
import GatewayCore
import GatewayServer
import Logging
import NIOPosix
import ServiceLifecycle

/// `sse-gateway`: parse arguments, load the configuration, run the gateway in a `ServiceGroup`. Nothing else.
@main
struct SSEGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sse-gateway",
        abstract: "A reverse proxy that lets a browser EventSource reach protected streaming APIs.",
        version: GatewayBuild.version,
        subcommands: [Serve.self, Check.self, Demo.self],
        defaultSubcommand: Serve.self
    )
}

/// Options every subcommand takes.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Path of the configuration file.")
    var config: String = "gateway.yml"

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(name: .long, help: "text or json.")
    var logFormat: GatewayLogHandler.Format = .text

    func bootstrapLogging() -> Logger {
        let format = logFormat
        let level = logLevel
        LoggingSystem.bootstrap { label in GatewayLogHandler(label: label, format: format, level: level) }
        return Logger(label: "sse-gateway")
    }

    /// Loads and validates the configuration, printing every error as `FILE:LINE:COLUMN: key.path: message`.
    func loadConfiguration() throws -> LoadedConfiguration {
        do {
            let loaded = try GatewayConfiguration.load(path: config)
            try Gateway.validate(loaded)
            return loaded
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension GatewayLogHandler.Format: ExpressibleByArgument {}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway (the default).")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let logger = options.bootstrapLogging()
        defer { LogWriter.standardError.flush() }  // lines still queued when the gateway stops
        let loaded = try options.loadConfiguration()
        let gateway = try Gateway(configuration: loaded.configuration, logger: logger)
        let reloader = ConfigurationReloader(path: options.config, gateway: gateway, logger: logger)
        let group = ServiceGroup(
            services: [gateway, reloader],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await group.run()
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration; exit 0, or 1 with every error as FILE:LINE:COLUMN: key.path: message."
    )

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let loaded = try options.loadConfiguration()
        let routes = loaded.configuration.routes
        print("\(options.config): OK (\(routes.count) route\(routes.count == 1 ? "" : "s"))")
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a sample SSE upstream and the gateway on the configuration, and print commands to try."
    )

    @OptionGroup var options: CommonOptions

    @Flag(help: "Serve over HTTPS with HTTP/2 on a throwaway self-signed certificate (the browser will warn).")
    var tls = false

    func run() async throws {
        let logger = options.bootstrapLogging()
        defer { LogWriter.standardError.flush() }
        let loaded = try options.loadConfiguration()
        var configuration = loaded.configuration
        let certificate = try tls ? DemoCertificate.make(host: configuration.listen.host) : nil
        defer { certificate?.remove() }
        if let certificate {
            configuration.tls = certificate.listenerConfiguration
        }
        let demo = try await DemoRunner.start(configuration: configuration, logger: logger)
        FileHandle.standardOutput.write(Data((demo.instructions + "\n").utf8))
        let group = ServiceGroup(
            services: [demo.gateway],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await group.run()
        await demo.stopUpstreams()
    }
}
