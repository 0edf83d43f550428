#!/usr/bin/env node
import { runAs } from './main.js';

runAs('system-upgrade');
