using Leuko.Cli;

NativeHeap.KeepFreedMemoryForReuse();
return await LeukoCommand.InvokeAsync(args);
