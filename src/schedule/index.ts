export { CalendarError, calendarToCron } from './calendar.js';
export { type CronMatcher, compileCron, HORIZON_YEARS } from './cron.js';
export { isCatchUpDue, parseSchedule, randomizedDelay, type Schedule } from './schedule.js';
