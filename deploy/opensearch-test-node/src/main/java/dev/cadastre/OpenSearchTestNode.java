package dev.cadastre;

import static org.codelibs.opensearch.runner.OpenSearchRunner.newConfigs;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.concurrent.CountDownLatch;

import org.apache.logging.log4j.LogManager;
import org.codelibs.opensearch.runner.OpenSearchRunner;
import org.opensearch.Version;
import org.opensearch.cluster.health.ClusterHealthStatus;
import org.opensearch.http.HttpServerTransport;

/**
 * One OpenSearch node for the test suite: a single-node cluster, plain HTTP on 127.0.0.1:PORT only,
 * data and logs under DIR, no security plugin. Prints one line starting with "OPENSEARCH READY" when
 * the cluster is at least yellow and HTTP answers on the requested port, then runs until the JVM is
 * told to stop (SIGTERM/SIGINT), when a shutdown hook closes the node.
 *
 * <p>Usage: {@code java -cp CLASSPATH dev.cadastre.OpenSearchTestNode PORT DIR}, or the system
 * properties {@code -Dopensearch.port=PORT -Dopensearch.dir=DIR}. Exits 1 if the node fails to start.
 */
public final class OpenSearchTestNode {

    private OpenSearchTestNode() {}

    public static void main(final String[] args) throws Exception {
        // OpenSearch sends System.out/err through its loggers; keep the process's own streams for the
        // lines this launcher prints, so they stay plain and still work while logging shuts down.
        final PrintStream out = System.out;
        final PrintStream err = System.err;
        // Log4j's own shutdown hook would stop logging while the node is still closing; close the node
        // first and stop Log4j after it (as OpenSearch's own bootstrap does).
        System.setProperty("log4j.shutdownHookEnabled", "false");
        final String portArg = args.length > 0 ? args[0] : System.getProperty("opensearch.port");
        final String dirArg = args.length > 1 ? args[1] : System.getProperty("opensearch.dir");
        if (portArg == null || dirArg == null) {
            System.err.println("usage: OpenSearchTestNode PORT DIR (or -Dopensearch.port=PORT -Dopensearch.dir=DIR)");
            System.exit(2);
        }
        final int port = Integer.parseInt(portArg.trim());
        final Path dir = Paths.get(dirArg).toAbsolutePath();
        Files.createDirectories(dir);

        final OpenSearchRunner runner = new OpenSearchRunner();
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
                out.println("OPENSEARCH STOPPED");
            } catch (final Throwable e) {
                err.println("OpenSearchTestNode: closing failed: " + e);
                e.printStackTrace(err);
            } finally {
                LogManager.shutdown();
                out.flush();
                stopped.countDown();
            }
        }, "opensearch-test-node-shutdown"));

        try {
            // The runner picks "baseHttpPort + node number" (node numbers start at 1) and, by default,
            // only ports up to 9299. Turn that scan off and set http.port explicitly, so the node binds
            // exactly PORT or fails to start.
            runner.setMaxHttpPort(-1);
            runner.onBuild((number, settings) -> {
                settings.put("http.port", String.valueOf(port));
                // Any free transport port: nothing connects to it in a single-node cluster.
                settings.put("transport.port", "0");
                settings.put("network.host", "127.0.0.1");
                settings.put("discovery.type", "single-node");
                settings.put("node.name", "cadastre-test");
                // Test machines have small or nearly full disks: never refuse shards for disk space.
                settings.put("cluster.routing.allocation.disk.threshold_enabled", false);
                // Tests create and drop indices freely.
                settings.put("action.destructive_requires_name", false);
            }).build(newConfigs()
                    .numOfNode(1)
                    .baseHttpPort(port - 1)
                    .clusterName("cadastre-test")
                    .basePath(dir.toString())
                    .printOnFailure());

            final ClusterHealthStatus status = runner.ensureYellow();
            final int bound = runner.node().injector().getInstance(HttpServerTransport.class)
                    .boundAddress().publishAddress().getPort();
            if (bound != port) {
                throw new IllegalStateException("HTTP bound to port " + bound + ", not the requested " + port);
            }
            out.println("OPENSEARCH READY http://127.0.0.1:" + port + " version " + Version.CURRENT
                    + " status " + status + " data " + dir);
            out.flush();
        } catch (final Throwable e) {
            err.println("OpenSearchTestNode: failed to start OpenSearch on 127.0.0.1:" + port);
            e.printStackTrace(err);
            System.exit(1);
        }

        stopped.await();
    }
}
