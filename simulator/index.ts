/** The simulator's public surface: the fleet simulation with its ground truth, and verify. */
export { Simulation, type SimulationOptions, type Progress } from './sim.js';
export { Ledger, type LedgerJson } from './ledger.js';
export { SCENARIO_DEFAULTS, type Scenario, type Burst } from './scenario.js';
export { geoCsv, loadSimGeos, simGeos, type SimGeo } from './geos.js';
export { verify, type VerifyOptions, type VerifyReport } from './verify.js';
export { Child } from './stack.js';
