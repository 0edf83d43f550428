#!/usr/bin/env node
import { runAs } from './main.js';

runAs(undefined);
