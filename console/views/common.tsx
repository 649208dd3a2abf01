/** Pieces every view uses: colour that honours NO_COLOR, and status symbols that work without it. */
import { createContext, useContext } from 'react';
import { Text, type TextProps } from 'ink';

export const ColorContext = createContext(true);

/** Text whose colour is dropped when colour is off (NO_COLOR): meaning is carried by symbols too. */
export function C({ color, dim, bold, inverse, children }: { color?: TextProps['color']; dim?: boolean; bold?: boolean; inverse?: boolean; children: React.ReactNode }) {
  const on = useContext(ColorContext);
  return (
    <Text color={on ? color : undefined} dimColor={on ? dim : undefined} bold={bold} inverse={inverse}>
      {children}
    </Text>
  );
}

export const SYMBOL = { ok: '●', bad: '✖', warn: '▲', info: '·', open: '!', resolved: '✓' } as const;

export function severityColor(severity: string): TextProps['color'] {
  return severity === 'critical' ? 'red' : severity === 'warning' ? 'yellow' : 'cyan';
}
