/**
 * A TCP relay on loopback that can be cut, for a network partition between one agent and its
 * bridge: cut() drops every connection and refuses new ones until restore().
 */
import net from 'node:net';

export class CuttableProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private cutOff = false;
  private target = { host: '127.0.0.1', port: 0 };

  constructor() {
    this.server = net.createServer((client) => {
      if (this.cutOff) return client.destroy();
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  /** Relays to the broker at `mqttUrl`; resolves to the relay's own URL. */
  async listen(mqttUrl: string): Promise<string> {
    const u = new URL(mqttUrl);
    this.target = { host: u.hostname, port: Number(u.port) };
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `mqtt://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.cutOff = false;
  }

  close(): Promise<void> {
    this.cut();
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
