import { Box, Text } from 'ink';
import { age, fit } from '../format.js';
import type { AlertView } from '../snapshot.js';
import { C, SYMBOL, severityColor } from './common.js';

export function Alerts({ alerts, selected, now, height, width }: { alerts: AlertView[]; selected: number; now: number; height: number; width: number }) {
  const first = Math.max(0, Math.min(selected - Math.floor(height / 2), alerts.length - height));
  const msgW = Math.max(20, width - 44);
  return (
    <Box flexDirection="column">
      <C bold>{`  ${'state'.padEnd(9)}${'severity'.padEnd(9)}${'age'.padEnd(8)}${'kind'.padEnd(16)}message`}</C>
      {alerts.length === 0 && <Text>no alerts in the last day</Text>}
      {alerts.slice(first, first + height).map((a, i) => {
        const open = a.state === 'open';
        return (
          <C key={a.id} inverse={first + i === selected}>
            <C color={open ? severityColor(a.severity) : 'green'}>{open ? (a.severity === 'critical' ? SYMBOL.bad : SYMBOL.warn) : SYMBOL.resolved}</C>
            {` ${(open ? (a.acknowledged ? 'open,ack' : 'OPEN') : 'resolved').padEnd(9)}${a.severity.padEnd(9)}${age((now - a.openedAt) / 1000).padEnd(8)}${fit(a.kind, 15)} ${fit(a.message, msgW)}`}
          </C>
        );
      })}
    </Box>
  );
}
