export { CalendarError, calendarToCron } from './calendar.js';
export { type CronMatcher, compileCron, HORIZON_YEARS, repeatsByTheClock } from './cron.js';
export { isCatchUpDue, parseSchedule, randomizedDelay, type Schedule } from './schedule.js';
export {
  type ArmedFire,
  CLOCK_STEP_MS,
  MAX_WAIT_MS,
  realTimers,
  ScheduleTimer,
  type ScheduleTimerOptions,
  type TimerHost,
} from './timer.js';
