/** The bridge as a running service: broker, downstream, and the ops HTTP endpoint. */
import { listen, opsRoutes } from '../common/http.js';
import { silentLogger, type Logger } from '../common/log.js';
import { createRegistry, type Registry } from '../common/metrics.js';
import { Bridge, type BridgeOptions } from './bridge.js';
import { instrumentBridge } from './telemetry.js';

export interface BridgeServiceOptions extends BridgeOptions {
  /** Port for /healthz and /metrics; omit to serve none. */
  httpPort?: number;
  httpHost?: string;
  drainMs?: number;
  logger?: Logger;
  registry?: Registry;
}

export interface BridgeService {
  bridge: Bridge;
  mqttPort: number;
  httpPort?: number;
  registry: Registry;
  close(): Promise<void>;
}

export async function startBridgeService(o: BridgeServiceOptions): Promise<BridgeService> {
  const log = o.logger ?? silentLogger;
  const registry = o.registry ?? createRegistry({ component: 'bridge' });
  const bridge = await Bridge.create(o);
  instrumentBridge(bridge, registry, log);
  // The ops endpoint comes first: a bridge (re)started while Kafka is down must be seen by
  // Prometheus as up and failing to forward, the alert that names the cause, not as down.
  // /healthz answers 503 until agents are accepted.
  let started = false;
  const http =
    o.httpPort === undefined
      ? undefined
      : await listen(
          opsRoutes(registry, () =>
            started
              ? { ok: true, downstream: bridge.downstreamKind, connectedAgents: bridge.connectedAgents, inFlightEvents: bridge.inFlightEvents, publishesInFlight: bridge.publishesInFlight }
              : { ok: false, phase: `waiting for the downstream (${bridge.downstreamKind})` },
          ),
          o.httpPort,
          o.httpHost ?? '127.0.0.1',
        );
  await bridge.start().catch(async (err) => {
    await http?.close();
    throw err;
  });
  started = true;
  log.info({ mqttPort: bridge.ports.mqtt, mqttsPort: bridge.ports.mqtts, httpPort: http?.port, downstream: bridge.downstreamKind, anonymous: !!o.allowAnonymous }, 'bridge started');
  let closing: Promise<void> | undefined;
  return {
    bridge,
    mqttPort: bridge.ports.mqtt,
    httpPort: http?.port,
    registry,
    close() {
      closing ??= (async () => {
        log.info({ publishesInFlight: bridge.publishesInFlight }, 'shutting down: draining in-flight publishes');
        await bridge.close(o.drainMs);
        await http?.close();
        log.info('bridge stopped');
      })();
      return closing;
    },
  };
}
