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
  await bridge.start();
  const http =
    o.httpPort === undefined
      ? undefined
      : await listen(
          opsRoutes(registry, () => ({ ok: true, downstream: bridge.downstreamKind, connectedAgents: bridge.connectedAgents, inFlightEvents: bridge.inFlightEvents, publishesInFlight: bridge.publishesInFlight })),
          o.httpPort,
          o.httpHost ?? '127.0.0.1',
        );
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
